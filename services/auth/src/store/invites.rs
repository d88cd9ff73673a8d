//! Invite codes (`[signup] mode = "invite"`): stored as SHA-256 hashes, used once, expiring.
//!
//! Using a code and creating the account happen in one transaction, so two sign-ups racing for
//! one code make exactly one account, and a sign-up that fails (a taken username) leaves the
//! code unused.

use super::{classify, Store, StoreError, User};
use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

impl Store {
    /// Stores a new invite by the hash of its code.
    pub async fn insert_invite(
        &self,
        code_hash: &[u8; 32],
        created_by: Uuid,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO invites (code_hash, created_by, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&code_hash[..])
            .bind(created_by)
            .bind(created_at)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(classify)
    }

    /// How many of `created_by`'s invites are unused and unexpired at `now`.
    pub async fn count_open_invites(
        &self,
        created_by: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM invites \
                 WHERE created_by = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(created_by)
            .bind(now)
            .fetch_one(pool)
            .await
        })
        .map_err(classify)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Whether the invite with this hash exists, is unused and has not expired at `now`.
    pub async fn invite_is_open(
        &self,
        code_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let found: Option<i32> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT 1 FROM invites \
                 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(&code_hash[..])
            .bind(now)
            .fetch_optional(pool)
            .await
        })
        .map_err(classify)?;
        Ok(found.is_some())
    }

    /// Uses the invite and inserts the user, in one transaction: [`StoreError::InvalidInvite`]
    /// when the code is unknown, used or expired (then no user is made),
    /// [`StoreError::UsernameTaken`] when the name exists (then the code stays unused).
    pub async fn insert_user_with_invite(
        &self,
        username: &str,
        password_hash: &str,
        code_hash: &[u8; 32],
    ) -> Result<User, StoreError> {
        let user = User {
            id: Uuid::now_v7(),
            username: username.to_owned(),
            created_at: Utc::now().trunc_subsecs(6),
        };
        let result: Result<bool, sqlx::Error> = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let used = sqlx::query(
                "UPDATE invites SET used_by = $1, used_at = $2 \
                 WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(user.id)
            .bind(user.created_at)
            .bind(&code_hash[..])
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if used != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO users (id, username, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(user.id)
            .bind(&user.username)
            .bind(password_hash)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(true)
        }
        .await);
        match result {
            Ok(true) => Ok(user),
            Ok(false) => Err(StoreError::InvalidInvite),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(StoreError::UsernameTaken(username.to_owned()))
            }
            Err(err) => Err(classify(err)),
        }
    }
}
