use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{
    PasswordHash as Phc, PasswordHasher as _, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::num::NonZeroUsize;
use std::sync::Arc;

use async_trait::async_trait;
use ordo_domain::auth::{Password, PasswordHash, PasswordHasher};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Argon2id with the OWASP Password Storage Cheat Sheet's first recommendation:
/// 19 MiB of memory, 2 iterations, 1 lane. Each hash runs on a blocking thread, so a
/// burst of logins never stalls the executor that serves other requests.
///
/// At most [`Argon2Hasher::concurrency`] hashes run at once (by default one per
/// core); the others wait their turn. Without the bound a burst of logins would
/// start one 19 MiB hash per request on Tokio's blocking pool (up to 512 threads,
/// about 10 GiB) and run them no faster, since hashing is bound by the cores.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    concurrency: usize,
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
        Self::with_params(params)
    }

    /// Minimal parameters, for tests that hash many passwords. Never for production.
    ///
    /// # Panics
    /// Never: the parameters are constants within Argon2's bounds.
    pub fn insecure_fast_for_tests() -> Self {
        #[allow(clippy::expect_used)] // constants, checked by the tests
        let params =
            Params::new(Params::MIN_M_COST, 1, 1, None).expect("minimal parameters are valid");
        Self::with_params(params)
    }

    fn with_params(params: Params) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::new_bounded(params, cores)
    }

    fn new_bounded(params: Params, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            params,
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
        }
    }

    /// The same hasher, running at most `concurrency` hashes at once (at least one).
    #[must_use]
    pub fn with_concurrency(self, concurrency: usize) -> Self {
        Self::new_bounded(self.params, concurrency)
    }

    /// How many hashes may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// How many hashes are running now.
    pub fn running(&self) -> usize {
        self.concurrency - self.permits.available_permits()
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Waits for a turn to hash; the turn ends when the permit is dropped, on the
    /// blocking thread, once the hash is done.
    async fn turn(&self) -> anyhow::Result<OwnedSemaphorePermit> {
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| anyhow::anyhow!("the password hasher is closed"))
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash> {
        let argon2 = self.argon2();
        let password = password.clone();
        let span = tracing::Span::current();
        let turn = self.turn().await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
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
        let turn = self.turn().await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
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
    async fn the_domains_dummy_hash_is_read_with_the_production_parameters_and_matches_nothing() {
        use ordo_domain::auth::DUMMY_PASSWORD_HASH;

        let hasher = Argon2Hasher::owasp();
        let real = hasher
            .hash(&Password::parse("correct horse battery staple").unwrap())
            .await
            .unwrap();
        let params = |phc: &str| phc.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(params(DUMMY_PASSWORD_HASH), params(real.as_str()));

        let dummy = PasswordHash::from_phc(DUMMY_PASSWORD_HASH.to_owned());
        let guess = Password::offered("correct horse battery staple").unwrap();
        assert!(!hasher.verify(&guess, &dummy).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_run_at_once_than_the_bound_allows() {
        let hasher = Argon2Hasher::owasp().with_concurrency(2);
        let password = Password::parse("correct horse battery staple").unwrap();
        let hash = hasher.hash(&password).await.unwrap();

        let verifications: Vec<_> = (0..8)
            .map(|_| {
                let (hasher, password, hash) = (hasher.clone(), password.clone(), hash.clone());
                tokio::spawn(async move { hasher.verify(&password, &hash).await })
            })
            .collect();
        let mut most_at_once = 0;
        while verifications.iter().any(|v| !v.is_finished()) {
            most_at_once = most_at_once.max(hasher.running());
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        }
        for verification in verifications {
            assert!(verification.await.unwrap().unwrap());
        }

        assert_eq!(hasher.concurrency(), 2);
        // Eight hashes of tens of milliseconds each, two at a time: the bound is
        // reached and never passed.
        assert_eq!(most_at_once, 2);
        assert_eq!(hasher.running(), 0);
    }

    #[tokio::test]
    async fn a_garbled_stored_hash_is_an_error_not_a_match() {
        let hasher = Argon2Hasher::insecure_fast_for_tests();
        let password = Password::offered("anything").unwrap();
        let garbled = PasswordHash::from_phc("not-a-phc-string".into());
        assert!(hasher.verify(&password, &garbled).await.is_err());
    }
}
