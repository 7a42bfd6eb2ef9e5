//! Gateways registered under their process's lease (`astroboids/W/gateways/<name>`), so that
//! status pages list the live ones and a dead one's entry expires with it.

use etcd_client::{GetOptions, PutOptions};
use serde::{Deserialize, Serialize};

use super::keys::{from_json, to_json};
use super::{Coordination, ETCD_REQUEST_TIMEOUT, etcd_call};
use crate::error::Result;

/// What a gateway says about itself when it registers (JSON in its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayInfo {
    pub name: String,
    /// Where players connect (as it printed it).
    pub addr: String,
    pub fingerprint: String,
    pub pid: u32,
    pub host: String,
    pub started_at_unix_ms: u64,
    pub version: String,
}

impl Coordination {
    fn gateways_prefix(&self) -> String {
        format!("{}gateways/", self.world_prefix())
    }

    /// Registers a gateway, bound to this process's lease (registering again updates it).
    pub async fn register_gateway(&self, info: &GatewayInfo) -> Result<()> {
        self.check_lease()?;
        if !crate::is_name(&info.name, crate::MAX_WORLD_NAME_LEN) {
            return Err(crate::NetError::InvalidName {
                what: "gateway name",
                name: info.name.clone(),
                why: "use 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'",
            });
        }
        let key = format!("{}{}", self.gateways_prefix(), info.name);
        let value = to_json(&key, info)?;
        let mut kv = self.client.kv_client();
        etcd_call(
            || format!("registration of gateway {} at {key}", info.name),
            ETCD_REQUEST_TIMEOUT,
            kv.put(
                key.clone(),
                value,
                Some(PutOptions::new().with_lease(self.lease_id)),
            ),
        )
        .await?;
        Ok(())
    }

    /// The live gateways, by name.
    pub async fn gateways(&self) -> Result<Vec<GatewayInfo>> {
        let prefix = self.gateways_prefix();
        let mut kv = self.client.kv_client();
        let response = etcd_call(
            || format!("read of {prefix}*"),
            ETCD_REQUEST_TIMEOUT,
            kv.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
        response.kvs().iter().map(from_json).collect()
    }
}
