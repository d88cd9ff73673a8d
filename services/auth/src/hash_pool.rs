//! A fixed pool of argon2 hashing threads, each reusing one memory buffer while busy.
//!
//! Why not `spawn_blocking`: every argon2id hash needs `argon2_memory_kib` of memory (19 MiB by
//! default). Run on tokio's blocking pool, each hash allocated that afresh on whichever of up to
//! 512 blocking threads picked it up, and the allocator kept the freed blocks per thread: the
//! auth process held 615 MiB after 200 hashes and never gave it back. Here `threads` threads
//! each allocate their buffer once and reuse it for every hash of a burst, and free it after
//! [`IDLE_RELEASE`] without work, so a quiet service holds no hashing memory at all.
//!
//! Guarantees: at most `threads` hashes run at once, so at most `threads` buffers exist; at most
//! `queue` more wait; a job beyond that is refused at once with [`PoolBusy`] (the service answers
//! 503 with `Retry-After`), so a burst costs neither memory nor an unbounded wait. Dropping the
//! pool ends its threads once the queued jobs are done.

use argon2::password_hash::{Output, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a thread keeps its buffer without work: long enough for the hashes of one burst of
/// sign-ups and logins to share it, short enough that memory goes back soon after.
pub(crate) const IDLE_RELEASE: Duration = Duration::from_secs(2);

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

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords never reach a log, not even through Debug.
        f.write_str(match self {
            Work::Hash { .. } => "Work::Hash",
            Work::Verify { .. } => "Work::Verify",
        })
    }
}

/// The jobs waiting, shared by the submitters and the threads.
#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Work>,
    /// Threads waiting for a job (each takes one at once).
    idle: usize,
    /// The pool was dropped: threads finish the queue and end.
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A thread that panicked mid-hash left the queue itself consistent.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The pool. Share it behind an `Arc`.
#[derive(Debug)]
pub(crate) struct HashPool {
    shared: Arc<Shared>,
    threads: usize,
    queue: usize,
}

impl HashPool {
    /// Starts `threads` hashing threads (at least one) with room for `queue` waiting jobs.
    pub(crate) fn start(argon2: Argon2<'static>, threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared::default());
        for index in 0..threads {
            let shared = Arc::clone(&shared);
            let argon2 = argon2.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || worker(&argon2, &shared))
                .expect("the OS starts a hashing thread");
        }
        Self {
            shared,
            threads,
            queue,
        }
    }

    /// How many threads hash (each holds one buffer of the configured memory while busy).
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
        let mut queue = self.shared.lock();
        // Jobs an idle thread is about to take are not waiting.
        if queue.jobs.len() >= self.queue + queue.idle {
            return Err(PoolBusy);
        }
        queue.jobs.push_back(work);
        drop(queue);
        self.shared.ready.notify_one();
        Ok(())
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// The next job, or `None` once the pool is closed and drained. Frees `memory` after
/// [`IDLE_RELEASE`] without one.
fn next_job(shared: &Shared, memory: &mut Vec<Block>) -> Option<Work> {
    let mut queue = shared.lock();
    loop {
        if let Some(job) = queue.jobs.pop_front() {
            return Some(job);
        }
        if queue.closed {
            return None;
        }
        queue.idle += 1;
        let (guard, waited) = if memory.is_empty() {
            let guard = shared
                .ready
                .wait(queue)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (guard, None)
        } else {
            let (guard, waited) = shared
                .ready
                .wait_timeout(queue, IDLE_RELEASE)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (guard, Some(waited))
        };
        queue = guard;
        queue.idle -= 1;
        if waited.is_some_and(|w| w.timed_out()) && queue.jobs.is_empty() {
            *memory = Vec::new();
        }
    }
}

/// One hashing thread: takes jobs until the pool is dropped, reusing `memory` for every hash.
fn worker(argon2: &Argon2<'static>, shared: &Shared) {
    let mut memory: Vec<Block> = Vec::new();
    while let Some(job) = next_job(shared, &mut memory) {
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

    #[test]
    fn an_idle_thread_gives_its_buffer_back() {
        let shared = Shared::default();
        let mut memory = vec![Block::default(); 8];
        let waiter = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let job = next_job(&shared, &mut memory);
                (job.is_none(), memory.len())
            });
            std::thread::sleep(IDLE_RELEASE + Duration::from_millis(500));
            shared.lock().closed = true;
            shared.ready.notify_all();
            waiter.join().expect("thread")
        });
        assert_eq!(
            waiter,
            (true, 0),
            "the buffer outlived {IDLE_RELEASE:?} idle"
        );
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
        let state = |pool: &HashPool| {
            let queue = pool.shared.lock();
            (queue.idle, queue.jobs.len())
        };
        while state(&pool) != (1, 0) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let running = tokio::spawn({
            let pool = Arc::clone(&pool);
            let salt = salt.as_str().to_owned();
            async move { pool.hash("first".into(), salt).await }
        });
        // Until the thread took the first job and is hashing it.
        while state(&pool) != (0, 0) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            pool.hash("second".into(), salt.as_str().into()).await,
            Err(PoolBusy),
            "a second job was taken although the only thread was busy"
        );
        assert!(running.await.expect("task").expect("room").is_ok());
    }
}
