//! The built-in user database: the users file in memory, and the backend
//! that checks CONNECT passwords against it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::Semaphore;

use super::password::StoredHash;
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
#[derive(Debug)]
pub struct UsersBackend {
    db: Arc<UserDb>,
    verifying: Semaphore,
}

impl UsersBackend {
    pub fn new(db: Arc<UserDb>) -> Self {
        Self { db, verifying: Semaphore::new(VERIFY_CONCURRENT_MAX) }
    }
}

impl Backend for UsersBackend {
    fn name(&self) -> &'static str {
        "users"
    }

    fn check<'a>(&'a self, credentials: Credentials<'a>) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        Box::pin(async move {
            let connect = credentials.connect;
            let Some(user) = connect.username.as_deref() else { return Decision::Ignore };
            let Some(hash) = self.db.get(user) else { return Decision::Ignore };
            let Some(password) = connect.password.clone() else { return Decision::Deny(refusal(connect)) };
            let Ok(_permit) = self.verifying.acquire().await else {
                return Decision::Deny(ReasonCode::SERVER_UNAVAILABLE);
            };
            match crate::seam::blocking(move || hash.verify(&password)).await {
                Some(true) => Decision::Allow,
                Some(false) => Decision::Deny(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
                None => Decision::Deny(ReasonCode::SERVER_UNAVAILABLE),
            }
        })
    }
}
