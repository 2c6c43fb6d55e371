//! Who may do what through the admin API: roles and the permissions they
//! grant. A viewer reads; an operator also acts on orders, dispatch and
//! supplier connections; a plugin deployer also installs, activates, rolls
//! back and disables plugins; an admin does all of that and manages tokens.

use std::fmt;

/// A token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Viewer,
    Operator,
    PluginDeployer,
    Admin,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read anything (GET).
    Read,
    /// Change orders, dispatch, routing and supplier connections.
    Operate,
    /// Change plugins.
    Deploy,
    /// Manage tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::PluginDeployer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::PluginDeployer => "plugin-deployer",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name, naming the valid ones when it is none of them.
    pub fn parse(s: &str) -> Result<Role, String> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            format!("unknown role `{s}`; roles are {}", names.join(", "))
        })
    }

    /// Whether this role grants `p`.
    pub fn allows(self, p: Permission) -> bool {
        matches!(
            (self, p),
            (Role::Admin, _)
                | (_, Permission::Read)
                | (Role::Operator, Permission::Operate)
                | (Role::PluginDeployer, Permission::Deploy)
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_they_say() {
        use Permission::*;
        let table = [
            (Role::Viewer, [true, false, false, false]),
            (Role::Operator, [true, true, false, false]),
            (Role::PluginDeployer, [true, false, true, false]),
            (Role::Admin, [true, true, true, true]),
        ];
        for (role, want) in table {
            let got = [Read, Operate, Deploy, Admin].map(|p| role.allows(p));
            assert_eq!(got, want, "{role}");
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("root").unwrap_err().contains("viewer, operator, plugin-deployer, admin"));
    }
}
