//! A fixed pool of argon2 hashing threads, each reusing one memory buffer.
//!
//! Why not `spawn_blocking`: every argon2id hash needs `argon2_memory_kib` of memory (19 MiB by
//! default). Run on tokio's blocking pool, each hash allocated that afresh on whichever of up to
//! 512 blocking threads picked it up, and the allocator kept the freed blocks per thread: the
//! auth process held 615 MiB after 200 hashes and never gave it back. Here `threads` threads
//! each allocate their buffer once and reuse it, so the memory after any burst is `threads`
//! buffers, whatever the number of hashes.
//!
//! Guarantees: at most `threads` hashes run at once; at most `queue` more wait; a job beyond that
//! is refused at once with [`PoolBusy`] (the service answers 503 with `Retry-After`), so a burst
//! costs neither memory nor an unbounded wait. Dropping the pool ends its threads once the queued
//! jobs are done.

use argon2::password_hash::{Output, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The queue is full: every thread is busy and `queue` jobs wait already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every password hashing thread is busy and the queue is full; try again shortly")]
pub struct PoolBusy;

/// What one job computes.
enum Work {
    /// Hash `password` with `salt` (PHC base64) under the pool's parameters.
    Hash {
        password: String,
        salt: String,
        reply: oneshot::Sender<Result<String, argon2::password_hash::Error>>,
    },
    /// Check `password` against the PHC string `stored` (its own parameters).
    Verify {
        password: String,
        stored: String,
        reply: oneshot::Sender<Result<bool, argon2::password_hash::Error>>,
    },
}

/// The pool. Cheap to share behind an `Arc`; jobs go through a bounded channel.
#[derive(Debug)]
pub(crate) struct HashPool {
    jobs: SyncSender<Work>,
    threads: usize,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords never reach a log, not even through Debug.
        f.write_str(match self {
            Work::Hash { .. } => "Work::Hash",
            Work::Verify { .. } => "Work::Verify",
        })
    }
}

impl HashPool {
    /// Starts `threads` hashing threads (at least one) with room for `queue` waiting jobs.
    pub(crate) fn start(argon2: Argon2<'static>, threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, receiver) = sync_channel::<Work>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            let argon2 = argon2.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || worker(&argon2, &receiver))
                .expect("the OS starts a hashing thread");
        }
        Self { jobs, threads }
    }

    /// How many threads hash (each holds one buffer of the configured memory).
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Hashes `password` with `salt` (PHC base64) and returns the PHC string.
    pub(crate) async fn hash(
        &self,
        password: String,
        salt: String,
    ) -> Result<Result<String, argon2::password_hash::Error>, PoolBusy> {
        let (reply, answer) = oneshot::channel();
        self.submit(Work::Hash {
            password,
            salt,
            reply,
        })?;
        answer.await.map_err(|_| PoolBusy)
    }

    /// Whether `password` matches the PHC string `stored`.
    pub(crate) async fn verify(
        &self,
        password: String,
        stored: String,
    ) -> Result<Result<bool, argon2::password_hash::Error>, PoolBusy> {
        let (reply, answer) = oneshot::channel();
        self.submit(Work::Verify {
            password,
            stored,
            reply,
        })?;
        answer.await.map_err(|_| PoolBusy)
    }

    fn submit(&self, work: Work) -> Result<(), PoolBusy> {
        match self.jobs.try_send(work) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(PoolBusy),
        }
    }
}

/// One hashing thread: takes jobs until the pool is dropped, reusing `memory` for every hash.
fn worker(argon2: &Argon2<'static>, jobs: &Mutex<Receiver<Work>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        match job {
            Work::Hash {
                password,
                salt,
                reply,
            } => {
                let _ = reply.send(hash_phc(argon2, &password, &salt, &mut memory));
            }
            Work::Verify {
                password,
                stored,
                reply,
            } => {
                let _ = reply.send(verify_phc(&password, &stored, &mut memory));
            }
        }
    }
}

/// `memory` grown to `blocks` (never shrunk: the next hash needs it again).
fn reserve(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    &mut memory[..blocks]
}

/// What `Argon2::hash_password` computes, with the caller's memory.
fn hash_phc(
    argon2: &Argon2<'static>,
    password: &str,
    salt: &str,
    memory: &mut Vec<Block>,
) -> Result<String, argon2::password_hash::Error> {
    let salt = Salt::from_b64(salt)?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let params = argon2.params().clone();
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let blocks = reserve(memory, params.block_count());
    let output = Output::init_with(output_len, |out| {
        Ok(argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt_bytes,
            out,
            &mut *blocks,
        )?)
    })?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into()?,
        salt: Some(salt),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// What `Argon2::verify_password` checks, with the caller's memory: the stored hash's own
/// algorithm, version and parameters, so hashes made with older settings still verify.
fn verify_phc(
    password: &str,
    stored: &str,
    memory: &mut Vec<Block>,
) -> Result<bool, argon2::password_hash::Error> {
    let parsed = PasswordHash::new(stored)?;
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let Some(expected) = parsed.hash else {
        return Err(argon2::password_hash::Error::Password);
    };
    let Some(salt) = parsed.salt else {
        return Err(argon2::password_hash::Error::SaltInvalid(
            argon2::password_hash::errors::InvalidValue::Malformed,
        ));
    };
    let stored_params = Params::try_from(&parsed)?;
    let params = Params::new(
        stored_params.m_cost(),
        stored_params.t_cost(),
        stored_params.p_cost(),
        Some(expected.len()),
    )?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let blocks = reserve(memory, params.block_count());
    let computed = Output::init_with(expected.len(), |out| {
        Ok(argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt_bytes,
            out,
            &mut *blocks,
        )?)
    })?;
    // Output's equality is constant-time.
    Ok(computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};

    fn small() -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).expect("params"),
        )
    }

    #[tokio::test]
    async fn hashes_match_the_argon2_crate_both_ways() {
        let pool = HashPool::start(small(), 1, 4);
        let salt = SaltString::encode_b64(&[7u8; 16]).expect("salt");
        let ours = pool
            .hash("a password".into(), salt.as_str().into())
            .await
            .expect("room")
            .expect("hash");
        let theirs = small()
            .hash_password(b"a password", &salt)
            .expect("hash")
            .to_string();
        assert_eq!(ours, theirs);
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(small().verify_password(b"a password", &parsed).is_ok());
        assert!(pool
            .verify("a password".into(), theirs.clone())
            .await
            .expect("room")
            .expect("verify"));
        assert!(!pool
            .verify("another one".into(), theirs)
            .await
            .expect("room")
            .expect("verify"));
    }

    #[tokio::test]
    async fn a_hash_made_with_other_parameters_still_verifies() {
        let pool = HashPool::start(small(), 1, 4);
        let other = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(128, 2, 1, None).expect("params"),
        );
        let salt = SaltString::encode_b64(&[9u8; 16]).expect("salt");
        let stored = other
            .hash_password(b"older settings", &salt)
            .expect("hash")
            .to_string();
        assert!(pool
            .verify("older settings".into(), stored)
            .await
            .expect("room")
            .expect("verify"));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        // One thread, no waiting room: while a slow hash runs, the next job is refused.
        let slow = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(65_536, 4, 1, None).expect("params"),
        );
        let pool = Arc::new(HashPool::start(slow, 1, 0));
        let salt = SaltString::encode_b64(&[1u8; 16]).expect("salt");
        let running = tokio::spawn({
            let pool = Arc::clone(&pool);
            let salt = salt.as_str().to_owned();
            async move { pool.hash("first".into(), salt).await }
        });
        // Give the thread time to take the first job off the zero-capacity channel.
        let mut refused = false;
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if pool.hash("second".into(), salt.as_str().into()).await == Err(PoolBusy) {
                refused = true;
                break;
            }
        }
        assert!(
            refused,
            "a second job was taken although the only thread was busy"
        );
        assert!(running.await.expect("task").expect("room").is_ok());
    }
}
