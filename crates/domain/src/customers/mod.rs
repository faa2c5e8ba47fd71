//! Customers: the people and companies orders are placed for.

mod error;
mod model;
mod ports;
mod service;

pub use error::{CreateCustomerError, DeleteCustomerError, UpdateCustomerError};
pub use model::{City, Customer, CustomerChanges, CustomerId, CustomerName, Email, NewCustomer, Phone};
#[cfg(any(test, feature = "mocks"))]
pub use ports::MockCustomerRepository;
pub use ports::CustomerRepository;
pub use service::CustomerService;
