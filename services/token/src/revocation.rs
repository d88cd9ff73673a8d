//! [`Revocations`]: the sessions whose access tokens are refused before they expire (logout,
//! password change, a reused refresh token), and a feed of them for open event streams.
//!
//! Access tokens are short-lived and carry their session (`sid`). Revoking a session adds it
//! here until every token of it has expired (its `until`, the latest `exp` any of its tokens can
//! have), so the set stays as small as the revocations of one token lifetime. The auth service
//! fills it; a verifier in the same process shares it, and a verifier elsewhere copies it from
//! the auth service's `GET /api/v1/auth/revocations` ([`Revocations::merge`]).

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;
use uuid::Uuid;

/// One revoked session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revoked {
    /// The session (`sid` claim).
    pub session: Uuid,
    /// Its user (`sub`), so that open streams can be found.
    pub user: Uuid,
    /// Seconds since the Unix epoch after which no token of the session is valid anyway.
    pub until: u64,
}

/// The revoked sessions of the last token lifetime, and a feed of new ones.
#[derive(Debug)]
pub struct Revocations {
    sessions: Mutex<HashMap<Uuid, Revoked>>,
    feed: broadcast::Sender<Revoked>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            feed: broadcast::channel(1024).0,
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Revocations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Revoked>> {
        // Every update is one insert or retain: a poisoned map is still consistent.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Revokes a session; its open streams are told through [`Revocations::subscribe`].
    pub fn revoke(&self, revoked: Revoked) {
        let now = now_secs();
        let new = {
            let mut sessions = self.lock();
            sessions.retain(|_, r| r.until >= now);
            sessions.insert(revoked.session, revoked).is_none()
        };
        if new {
            // No subscriber is fine: nothing is open to end.
            let _ = self.feed.send(revoked);
        }
    }

    /// Adds revocations learned elsewhere (another process's list); new ones reach the feed.
    pub fn merge(&self, revoked: impl IntoIterator<Item = Revoked>) {
        for r in revoked {
            self.revoke(r);
        }
    }

    /// Whether tokens of `session` are refused.
    pub fn is_revoked(&self, session: &Uuid) -> bool {
        self.lock().contains_key(session)
    }

    /// The revocations still in force.
    pub fn current(&self) -> Vec<Revoked> {
        let now = now_secs();
        let mut sessions = self.lock();
        sessions.retain(|_, r| r.until >= now);
        sessions.values().copied().collect()
    }

    /// New revocations from now on (a lagging receiver should end every stream it cannot check).
    pub fn subscribe(&self) -> broadcast::Receiver<Revoked> {
        self.feed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_session_is_refused_until_its_tokens_expire_and_then_forgotten() {
        let revocations = Revocations::default();
        let mut feed = revocations.subscribe();
        let live = Revoked {
            session: Uuid::new_v4(),
            user: Uuid::new_v4(),
            until: now_secs() + 600,
        };
        let old = Revoked {
            session: Uuid::new_v4(),
            until: now_secs() - 1,
            ..live
        };
        revocations.revoke(live);
        revocations.revoke(old);
        revocations.revoke(live);
        assert!(revocations.is_revoked(&live.session));
        assert_eq!(revocations.current(), vec![live]);
        assert_eq!(feed.try_recv().ok(), Some(live));
        assert_eq!(feed.try_recv().ok(), Some(old), "each new one once");
        assert!(feed.try_recv().is_err(), "a repeat is not fed again");
    }
}
