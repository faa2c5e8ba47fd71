//! Who is calling: staff users who log in with a password and hold short-lived
//! access tokens plus single-use refresh tokens, and the rules that keep those
//! tokens safe (rotation, reuse detection, expiry).
//!
//! A refresh token belongs to a *family*: the chain of tokens that descend from one
//! login by rotation. Each token can be exchanged once; presenting one that was
//! already exchanged means someone holds a copy, so the whole family is revoked and
//! both the thief and the user must log in again.

mod model;
mod ports;
mod refresh;

pub use model::{Password, PasswordHash, Principal, Role, UserId};
pub use ports::{AccessClaims, AccessTokens, InvalidToken, PasswordHasher, StoredUser};
pub use refresh::{
    RefreshFamilyId, RefreshToken, RefreshTokenHash, Rotation, StoredRefreshToken, rotation,
};
