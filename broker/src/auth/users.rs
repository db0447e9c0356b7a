//! The built-in user database: the users file in memory, and the backend
//! that checks CONNECT passwords against it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use tokio::sync::Semaphore;

use super::password::{self, StoredHash};
use super::users_file::UsersFile;
use super::{Backend, Credentials, Decision, refusal};
use crate::hash::AHashMap;
use mqtt_codec::ReasonCode;

/// Password verifications running at once, at most. Each costs tens of
/// milliseconds of CPU and (argon2id) 19 MiB: a burst of connects waits here
/// instead of exhausting memory or the blocking pool.
const VERIFY_CONCURRENT_MAX: usize = 4;

type Users = AHashMap<String, Arc<StoredHash>>;

/// The users file, loaded. `reload` swaps in a new version only if the whole
/// file is good.
#[derive(Debug)]
pub struct UserDb {
    path: PathBuf,
    users: RwLock<Arc<Users>>,
}

impl UserDb {
    /// Loads the file; the error names the file and the bad line.
    pub fn load(path: &Path) -> Result<Self, String> {
        Ok(Self { path: path.to_owned(), users: RwLock::new(Arc::new(read(path)?)) })
    }

    /// Rereads the file. On error the users loaded before stay in force.
    pub fn reload(&self) -> Result<(), String> {
        let users = read(&self.path)?;
        *self.users.write() = Arc::new(users);
        Ok(())
    }

    pub fn get(&self, user: &str) -> Option<Arc<StoredHash>> {
        self.users.read().get(user).cloned()
    }

    pub fn len(&self) -> usize {
        self.users.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn read(path: &Path) -> Result<Users, String> {
    let file = UsersFile::load(path)?;
    let mut users = AHashMap::new();
    for (user, hash) in file.users() {
        // `load` checked every hash; a failure here would be a bug, reported as a bad file.
        let hash = StoredHash::parse(hash).map_err(|e| format!("{}: user {user:?}: {e}", path.display()))?;
        users.insert(user.to_owned(), Arc::new(hash));
    }
    Ok(users)
}

/// Checks CONNECT user name and password against the users file: a user it
/// does not know is ignored (the next backend may know it); a known user
/// with a missing or wrong password is refused. The [`super::Chain`] rereads
/// the file (it is shared with SCRAM).
///
/// An unknown user's password is verified too, against
/// [`password::dummy_hash`], and the result thrown away: answering at once
/// would tell an attacker, by the response time, which user names exist.
#[derive(Debug)]
pub struct UsersBackend {
    db: Arc<UserDb>,
    verifying: Semaphore,
    /// Password verifications run, known users and unknown ones alike.
    verifications: AtomicU64,
}

impl UsersBackend {
    pub fn new(db: Arc<UserDb>) -> Self {
        Self { db, verifying: Semaphore::new(VERIFY_CONCURRENT_MAX), verifications: AtomicU64::new(0) }
    }

    /// How many passwords this backend has verified (for tests and metrics).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    async fn decide(&self, credentials: Credentials<'_>) -> Decision {
        let connect = credentials.connect;
        let Some(user) = connect.username.as_deref() else { return Decision::Ignore };
        let known = self.db.get(user);
        let Some(password) = connect.password.clone() else {
            return if known.is_some() { Decision::Deny(refusal(connect)) } else { Decision::Ignore };
        };
        let Ok(_permit) = self.verifying.acquire().await else {
            return Decision::Deny(ReasonCode::SERVER_UNAVAILABLE);
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let hash = known.clone();
        let matched = crate::seam::blocking(move || match hash {
            Some(hash) => hash.verify(&password),
            None => password::dummy_hash().is_some_and(|dummy| dummy.verify(&password)),
        })
        .await;
        match (known, matched) {
            (None, _) => Decision::Ignore,
            (Some(_), Some(true)) => Decision::Allow,
            (Some(_), Some(false)) => Decision::Deny(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
            (Some(_), None) => Decision::Deny(ReasonCode::SERVER_UNAVAILABLE),
        }
    }
}

impl Backend for UsersBackend {
    fn name(&self) -> &'static str {
        "users"
    }

    fn check<'a>(&'a self, credentials: Credentials<'a>) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        Box::pin(self.decide(credentials))
    }
}

#[cfg(test)]
mod tests;
