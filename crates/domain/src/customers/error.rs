use super::CustomerId;

/// Why a customer could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateCustomerError {
    /// Another customer has this address.
    #[error("a customer with this e-mail address already exists")]
    EmailTaken,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a customer could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateCustomerError {
    /// No such customer.
    #[error("customer {0} not found")]
    NotFound(CustomerId),
    /// Another customer has the new address.
    #[error("a customer with this e-mail address already exists")]
    EmailTaken,
    /// The customer changed since the version the caller saw.
    #[error("customer {0} was changed by someone else")]
    VersionMismatch(CustomerId),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a customer could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteCustomerError {
    /// No such customer.
    #[error("customer {0} not found")]
    NotFound(CustomerId),
    /// Orders refer to the customer; they must be deleted first.
    #[error("customer {0} has orders")]
    HasOrders(CustomerId),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}
