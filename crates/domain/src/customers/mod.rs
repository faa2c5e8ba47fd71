//! Customers: the people and companies orders are placed for.

mod error;
mod model;
mod ports;
mod service;

pub use error::{CreateCustomerError, DeleteCustomerError, UpdateCustomerError};
pub use model::{
    City, Customer, CustomerChanges, CustomerId, CustomerName, Email, NewCustomer, Phone,
};
pub use ports::CustomerRepository;
#[cfg(any(test, feature = "mocks"))]
pub use ports::MockCustomerRepository;
pub use service::CustomerService;
