use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{
    PasswordHash as Phc, PasswordHasher as _, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use ordo_domain::auth::{Password, PasswordHash, PasswordHasher};

/// Argon2id with the OWASP Password Storage Cheat Sheet's first recommendation:
/// 19 MiB of memory, 2 iterations, 1 lane. Each hash runs on a blocking thread, so a
/// burst of logins never stalls the executor that serves other requests.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    params: Params,
}

impl Default for Argon2Hasher {
    fn default() -> Self {
        Self::owasp()
    }
}

impl Argon2Hasher {
    /// The production parameters.
    ///
    /// # Panics
    /// Never: the parameters are constants within Argon2's bounds.
    pub fn owasp() -> Self {
        #[allow(clippy::expect_used)] // constants, checked by the tests
        let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP parameters are valid");
        Self { params }
    }

    /// Minimal parameters, for tests that hash many passwords. Never for production.
    ///
    /// # Panics
    /// Never: the parameters are constants within Argon2's bounds.
    pub fn insecure_fast_for_tests() -> Self {
        #[allow(clippy::expect_used)] // constants, checked by the tests
        let params =
            Params::new(Params::MIN_M_COST, 1, 1, None).expect("minimal parameters are valid");
        Self { params }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash> {
        let argon2 = self.argon2();
        let password = password.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let salt = SaltString::generate(&mut OsRng);
                argon2
                    .hash_password(password.expose().as_bytes(), &salt)
                    .map(|phc| PasswordHash::from_phc(phc.to_string()))
                    .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
            })
        })
        .await?
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> anyhow::Result<bool> {
        // The parameters stored in the hash are used, so hashes made under older
        // parameters keep working.
        let argon2 = self.argon2();
        let password = password.clone();
        let hash = hash.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let phc = Phc::new(hash.as_str())
                    .map_err(|e| anyhow::anyhow!("a stored password hash is unreadable: {e}"))?;
                Ok(argon2
                    .verify_password(password.expose().as_bytes(), &phc)
                    .is_ok())
            })
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = Argon2Hasher::insecure_fast_for_tests();
        let password = Password::parse("correct horse battery staple").unwrap();
        let hash = hasher.hash(&password).await.unwrap();

        assert!(hash.as_str().starts_with("$argon2id$v=19$"));
        assert!(hasher.verify(&password, &hash).await.unwrap());
        let wrong = Password::offered("correct horse battery stapler").unwrap();
        assert!(!hasher.verify(&wrong, &hash).await.unwrap());
    }

    #[tokio::test]
    async fn the_same_password_hashes_differently_each_time() {
        let hasher = Argon2Hasher::insecure_fast_for_tests();
        let password = Password::parse("correct horse battery staple").unwrap();
        let (a, b) = (
            hasher.hash(&password).await.unwrap(),
            hasher.hash(&password).await.unwrap(),
        );
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn production_hashes_carry_the_owasp_parameters() {
        let hasher = Argon2Hasher::owasp();
        let hash = hasher
            .hash(&Password::parse("correct horse battery staple").unwrap())
            .await
            .unwrap();
        assert!(hash.as_str().contains("m=19456,t=2,p=1"), "{hash:?}");
    }

    #[tokio::test]
    async fn a_garbled_stored_hash_is_an_error_not_a_match() {
        let hasher = Argon2Hasher::insecure_fast_for_tests();
        let password = Password::offered("anything").unwrap();
        let garbled = PasswordHash::from_phc("not-a-phc-string".into());
        assert!(hasher.verify(&password, &garbled).await.is_err());
    }
}
