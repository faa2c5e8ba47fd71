//! API clients: programs that call Ordo with an API key, each with its own rate
//! limit and, optionally, the networks it may call from.
//!
//! A key looks like `ordo_<prefix>_<secret>`. The prefix identifies the key in logs
//! and lists without revealing it; the whole key is shown once, when it is created
//! or rotated, and stored only as a digest, so a copy of the database holds no
//! usable key.

mod error;
mod model;
mod ports;
mod service;

pub use error::{
    AuthenticateClientError, DeleteClientError, RegisterClientError, RotateKeyError,
    UpdateClientError,
};
pub use model::{
    ApiKey, ApiKeyDigest, Client, ClientChanges, ClientId, ClientName, ClientParts,
    ClientRateLimit, IpAllowList, IssuedKey, NewClient,
};
pub use ports::{ApiKeys, ClientDirectory, ClientRecord, ClientRepository};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockApiKeys, MockClientDirectory, MockClientRepository};
pub use service::{ClientService, ClientSession};
