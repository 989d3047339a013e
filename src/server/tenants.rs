//! The tenant registry: which tenants exist, persisted as one JSON file in
//! the data directory (replaced atomically and durably by `durable_file`).

use parking_lot::RwLock;
use std::collections::BTreeSet;
use std::path::PathBuf;

use verdict_storage::Tenant;

use super::error::NodeError;

/// The tenants of this node; `default` always exists.
#[derive(Debug)]
pub struct TenantRegistry {
    path: PathBuf,
    names: RwLock<BTreeSet<String>>,
}

impl TenantRegistry {
    /// Loads (or creates) the registry file `path`.
    ///
    /// # Errors
    /// An unreadable or malformed file.
    pub fn open(path: PathBuf) -> Result<Self, NodeError> {
        let mut names: BTreeSet<String> = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                NodeError::Internal(format!(
                    "tenant registry `{}` is corrupt: {e}",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => {
                return Err(NodeError::Internal(format!(
                    "cannot read `{}`: {e}",
                    path.display()
                )))
            }
        };
        names.insert(Tenant::default_tenant().as_str().to_string());
        let registry = TenantRegistry {
            path,
            names: RwLock::new(names),
        };
        registry.persist()?;
        Ok(registry)
    }

    fn persist(&self) -> Result<(), NodeError> {
        let json = serde_json::to_vec_pretty(&*self.names.read())
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        verdict_storage::durable_file::write_atomic(&self.path, &json).map_err(|e| {
            NodeError::Internal(format!("cannot write `{}`: {e}", self.path.display()))
        })
    }

    /// The tenant named `name` (`""` = `default`), if it exists.
    ///
    /// # Errors
    /// An invalid name (INVALID_ARGUMENT naming `field`) or an unknown tenant.
    pub fn get(&self, name: &str, field: &str) -> Result<Tenant, NodeError> {
        let name = if name.is_empty() {
            Tenant::default_tenant().as_str().to_string()
        } else {
            name.to_string()
        };
        let tenant = Tenant::new(&name).map_err(|e| NodeError::invalid(field, e))?;
        let exists = self.names.read().contains(tenant.as_str());
        if exists {
            Ok(tenant)
        } else {
            Err(NodeError::TenantNotFound(name))
        }
    }

    /// Adds a tenant.
    ///
    /// # Errors
    /// An invalid name, an existing tenant, or a failed write.
    pub fn create(&self, name: &str) -> Result<Tenant, NodeError> {
        let tenant = Tenant::new(name).map_err(|e| NodeError::invalid("name", e))?;
        {
            let mut names = self.names.write();
            if !names.insert(tenant.as_str().to_string()) {
                return Err(NodeError::AlreadyExists(format!(
                    "tenant `{name}` already exists"
                )));
            }
        }
        self.persist()?;
        Ok(tenant)
    }

    /// Removes a tenant from the registry (its data is deleted by the caller).
    ///
    /// # Errors
    /// The default tenant, an unknown tenant, or a failed write.
    pub fn remove(&self, name: &str) -> Result<(), NodeError> {
        if name == Tenant::default_tenant().as_str() {
            return Err(NodeError::FailedPrecondition(
                "the default tenant cannot be deleted".into(),
            ));
        }
        {
            let mut names = self.names.write();
            if !names.remove(name) {
                return Err(NodeError::TenantNotFound(name.to_string()));
            }
        }
        self.persist()
    }

    /// Every tenant, sorted.
    pub fn list(&self) -> Vec<String> {
        self.names.read().iter().cloned().collect()
    }
}

/// The replicated view: the Raft state machine creates and removes tenants
/// through this (persisted before returning).
impl verdict_raft::TenantSet for TenantRegistry {
    fn contains(&self, name: &str) -> bool {
        self.names.read().contains(name)
    }

    fn insert(&self, name: &str) -> Result<bool, String> {
        let added = self.names.write().insert(name.to_string());
        if added {
            self.persist().map_err(|e| e.to_string())?;
        }
        Ok(added)
    }

    fn remove(&self, name: &str) -> Result<bool, String> {
        let removed = self.names.write().remove(name);
        if removed {
            self.persist().map_err(|e| e.to_string())?;
        }
        Ok(removed)
    }

    fn list(&self) -> Vec<String> {
        TenantRegistry::list(self)
    }

    fn replace(&self, names: Vec<String>) -> Result<(), String> {
        {
            let mut set = self.names.write();
            *set = names.into_iter().collect();
            set.insert(Tenant::default_tenant().as_str().to_string());
        }
        self.persist().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_remove_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.json");
        let r = TenantRegistry::open(path.clone()).unwrap();
        assert_eq!(r.list(), vec!["default"]);
        r.create("acme").unwrap();
        assert!(matches!(r.create("acme"), Err(NodeError::AlreadyExists(_))));
        assert!(matches!(
            r.create("Bad Name"),
            Err(NodeError::InvalidArgument { .. })
        ));
        let reopened = TenantRegistry::open(path).unwrap();
        assert_eq!(reopened.list(), vec!["acme", "default"]);
        assert!(reopened.get("acme", "tenant").is_ok());
        assert!(matches!(
            reopened.get("nope", "tenant"),
            Err(NodeError::TenantNotFound(_))
        ));
        assert!(reopened.remove("default").is_err());
        reopened.remove("acme").unwrap();
        assert!(matches!(
            reopened.get("acme", "tenant"),
            Err(NodeError::TenantNotFound(_))
        ));
    }
}
