use std::net::IpAddr;

use super::{LimitCheck, RateKey, RatePolicy};

/// The limits of each kind of caller. A client's limit is not here: each client
/// has its own, on its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicies {
    /// The requests of each logged-in user.
    pub user: RatePolicy,
    /// The requests without valid credentials from each network address.
    pub anonymous: RatePolicy,
    /// The login attempts from each network address, on top of its other limit.
    pub login_per_address: RatePolicy,
    /// The login attempts for each e-mail address, on top of the others.
    pub login_per_email: RatePolicy,
}

/// Who a request comes from, as rate limits see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedCaller {
    /// A user with a valid access token.
    User(uuid::Uuid),
    /// An API client with a valid key, and the limit on its record.
    Client {
        /// Which client.
        id: uuid::Uuid,
        /// Its limit.
        policy: RatePolicy,
    },
    /// No valid credentials.
    Anonymous,
}

/// A login attempt (`/v1/auth/login`, or the `password` grant of `/v1/auth/token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginAttempt<'a> {
    /// The e-mail address as sent, when the body has one.
    pub email: Option<&'a str>,
}

/// A request, as rate limits see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitedRequest<'a> {
    /// Who sends it.
    pub caller: LimitedCaller,
    /// From where.
    pub address: IpAddr,
    /// Whether it tries to log in, and as whom.
    pub login: Option<LoginAttempt<'a>>,
}

impl RatePolicies {
    /// The one check every request makes: a user's and a client's allowance
    /// follows them wherever they call from; callers without credentials share
    /// their network address's.
    pub fn request_check(&self, caller: LimitedCaller, address: IpAddr) -> LimitCheck {
        match caller {
            LimitedCaller::User(id) => LimitCheck {
                key: RateKey::User(id),
                policy: self.user,
            },
            LimitedCaller::Client { id, policy } => LimitCheck {
                key: RateKey::Client(id),
                policy,
            },
            LimitedCaller::Anonymous => LimitCheck {
                key: RateKey::address(address),
                policy: self.anonymous,
            },
        }
    }

    /// The checks of a login attempt, to be decided together: the caller's own
    /// check, the attempts from its address and, when the body names one, the
    /// attempts for the e-mail address. The e-mail's allowance is kept whether or
    /// not a user has that address, so a refusal reveals nothing about accounts.
    pub fn login_checks(
        &self,
        caller: LimitedCaller,
        address: IpAddr,
        email: Option<&str>,
    ) -> Vec<LimitCheck> {
        let mut checks = Vec::with_capacity(3);
        checks.push(self.request_check(caller, address));
        checks.push(LimitCheck {
            key: RateKey::login_address(address),
            policy: self.login_per_address,
        });
        if let Some(key) = email.and_then(RateKey::login_email) {
            checks.push(LimitCheck {
                key,
                policy: self.login_per_email,
            });
        }
        checks
    }
}
