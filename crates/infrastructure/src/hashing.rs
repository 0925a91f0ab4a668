//! [`PasswordHasher`] with bcrypt, run on tokio's blocking pool, at most one
//! hash per core at a time.
//!
//! bcrypt uses at most 72 bytes of a password. The crate's `non_truncating_*`
//! functions count the C terminator too and so refuse exactly 72 bytes, which
//! bcrypt does use in full; the length is therefore checked here instead.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use userhub_domain::PortError;
use userhub_domain::model::{Password, PasswordHash};
use userhub_domain::ports::PasswordHasher;

/// bcrypt at a fixed cost. Hashing takes hundreds of milliseconds at the
/// default cost, so it never runs on the async executor; and no more hashes
/// run at once than there are cores, so that a login storm queues instead
/// of crowding out the threads that answer every other request.
#[derive(Clone, Debug)]
pub struct BcryptPasswordHasher {
    cost: u32,
    dummy: PasswordHash,
    slots: Arc<Semaphore>,
}

impl BcryptPasswordHasher {
    /// A hasher at `cost`, with a dummy hash made at that cost so that a login
    /// for an unknown account costs the same as one for a known account.
    ///
    /// # Errors
    /// [`PortError`] when `cost` is outside bcrypt's range (4–31).
    pub async fn new(cost: u32) -> Result<Self, PortError> {
        let dummy = blocking(move || {
            let mut random = [0_u8; 32];
            getrandom::fill(&mut random).map_err(|e| PortError::unexpected(e.to_string()))?;
            bcrypt::hash(random, cost).map_err(PortError::unexpected)
        })
        .await?;
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(Self {
            cost,
            dummy: PasswordHash::new(dummy),
            slots: Arc::new(Semaphore::new(cores)),
        })
    }

    /// Runs `work` on the blocking pool once a core is free for it.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PortError> + Send + 'static,
    ) -> Result<T, PortError> {
        let _slot = self.slots.acquire().await.map_err(PortError::unexpected)?;
        blocking(work).await
    }
}

#[async_trait]
impl PasswordHasher for BcryptPasswordHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, PortError> {
        let secret = password.secret().clone();
        let cost = self.cost;
        let hash = self
            .run(move || {
                let bytes = secret.expose_secret().as_bytes();
                if bytes.len() > Password::MAX_BYTES {
                    return Err(PortError::unexpected(
                        "password longer than bcrypt can hold",
                    ));
                }
                bcrypt::hash(bytes, cost).map_err(PortError::unexpected)
            })
            .await?;
        Ok(PasswordHash::new(hash))
    }

    async fn verify(
        &self,
        password: &SecretString,
        hash: &PasswordHash,
    ) -> Result<bool, PortError> {
        let secret = password.clone();
        // An account without a password (it signs in through a provider)
        // takes the same time to refuse as a wrong password.
        let has_password = hash.is_set();
        let hash = if has_password { hash } else { &self.dummy }
            .as_str()
            .to_owned();
        self.run(move || {
            let bytes = secret.expose_secret().as_bytes();
            // Longer than bcrypt can hold: it cannot be the stored password,
            // though its first 72 bytes might be. Verify anyway for equal timing.
            let fits = bytes.len() <= Password::MAX_BYTES;
            let matches = bcrypt::verify(bytes, &hash).map_err(PortError::unexpected)?;
            Ok(has_password && fits && matches)
        })
        .await
    }

    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        // Modular crypt format: `$2b$<cost>$<salt and hash>`.
        let cost = hash
            .as_str()
            .split('$')
            .nth(2)
            .and_then(|c| c.parse::<u32>().ok());
        cost != Some(self.cost)
    }

    fn dummy_hash(&self) -> PasswordHash {
        self.dummy.clone()
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PortError> + Send + 'static,
) -> Result<T, PortError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(PortError::unexpected)?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn password(raw: &str) -> Password {
        Password::new(SecretString::from(raw)).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let hasher = BcryptPasswordHasher::new(4).await.unwrap();
        let hash = hasher.hash(&password("correct horse")).await.unwrap();
        assert!(hash.as_str().starts_with("$2b$04$"));
        assert!(
            hasher
                .verify(&SecretString::from("correct horse"), &hash)
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(&SecretString::from("correct horsE"), &hash)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn no_password_matches_an_account_without_one() {
        let hasher = BcryptPasswordHasher::new(4).await.unwrap();
        for typed in ["", "correct horse", "x"] {
            let matched = hasher
                .verify(&SecretString::from(typed), &PasswordHash::none())
                .await
                .unwrap();
            assert!(!matched, "{typed:?} matched an empty hash");
        }
    }

    #[tokio::test]
    async fn a_password_longer_than_72_bytes_never_matches_its_truncation() {
        let hasher = BcryptPasswordHasher::new(4).await.unwrap();
        let hash = hasher.hash(&password(&"a".repeat(72))).await.unwrap();
        assert!(
            !hasher
                .verify(&SecretString::from("a".repeat(73)), &hash)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashes_of_another_cost_need_rehashing() {
        let (old, current) = (
            BcryptPasswordHasher::new(4).await.unwrap(),
            BcryptPasswordHasher::new(5).await.unwrap(),
        );
        let hash = old.hash(&password("correct horse")).await.unwrap();
        assert!(current.needs_rehash(&hash));
        assert!(!old.needs_rehash(&hash));
        assert!(current.needs_rehash(&PasswordHash::new("garbage".into())));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_run_at_once_than_there_are_cores() {
        let hasher = BcryptPasswordHasher::new(4).await.unwrap();
        let cores = std::thread::available_parallelism().unwrap().get();
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let jobs: Vec<_> = (0..cores * 4)
            .map(|_| {
                let (hasher, running, peak) = (hasher.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    hasher
                        .run(move || {
                            use std::sync::atomic::Ordering::SeqCst;
                            let now = running.fetch_add(1, SeqCst) + 1;
                            peak.fetch_max(now, SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            running.fetch_sub(1, SeqCst);
                            Ok(())
                        })
                        .await
                })
            })
            .collect();
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
        assert!(peak >= 1 && peak <= cores, "peak {peak} with {cores} cores");
    }

    #[tokio::test]
    async fn the_dummy_hash_has_the_configured_cost() {
        let hasher = BcryptPasswordHasher::new(5).await.unwrap();
        assert!(hasher.dummy_hash().as_str().starts_with("$2b$05$"));
    }
}
