//! Sharding: spreading the configured targets over several replicas of the
//! exporter, each collecting only its own share (pure, no I/O).
//!
//! The convention is kube-state-metrics': `--shard N --total-shards M`, or the
//! shard taken from the ordinal of a StatefulSet pod's name
//! (`barman-cloud-exporter-2` is shard 2). A target belongs to shard
//! `h(name) mod M`, where `h` is the first 8 bytes (big-endian) of the
//! SHA-256 of the target's `name`: stable across restarts, versions and
//! machines, independent of the order of the targets in the file, so a
//! restart or a change of one target moves no other target. Kubernetes
//! restarts the pods and Prometheus scrapes each of them; nothing
//! coordinates the replicas.

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A sharding error: the flags or the pod name do not name a valid shard.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShardError {
    /// `--total-shards` is 0.
    #[error("--total-shards must be at least 1")]
    NoShards,
    /// The shard number is not below `--total-shards`.
    #[error("shard {index} is out of range: --total-shards is {total} (shards are numbered 0 to {})", .total - 1)]
    OutOfRange {
        /// The shard asked for.
        index: u32,
        /// `--total-shards`.
        total: u32,
    },
    /// The pod name does not end in `-<ordinal>`.
    #[error("pod name {0:?} does not end in -<ordinal> (a StatefulSet pod name such as barman-cloud-exporter-0)")]
    NoOrdinal(String),
}

/// Which share of the targets this replica collects: shard `index` of `total`
/// (0-based). `Shard::default()` is the unsharded exporter (shard 0 of 1),
/// which owns every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This replica's shard, `0..total`.
    pub index: u32,
    /// How many shards the targets are spread over, at least 1.
    pub total: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, total: 1 }
    }
}

impl Shard {
    /// Shard `index` of `total`.
    ///
    /// # Errors
    /// [`ShardError::NoShards`] when `total` is 0, [`ShardError::OutOfRange`]
    /// when `index >= total`.
    pub fn new(index: u32, total: u32) -> Result<Self, ShardError> {
        if total == 0 {
            return Err(ShardError::NoShards);
        }
        if index >= total {
            return Err(ShardError::OutOfRange { index, total });
        }
        Ok(Self { index, total })
    }

    /// The shard of a StatefulSet pod: the ordinal after the last `-` of
    /// `pod_name` (`barman-cloud-exporter-2` → 2), of `total`.
    ///
    /// # Errors
    /// [`ShardError::NoOrdinal`] when the name does not end in `-<digits>`,
    /// else as [`Shard::new`].
    pub fn from_pod_name(pod_name: &str, total: u32) -> Result<Self, ShardError> {
        let ordinal = pod_name
            .trim()
            .rsplit_once('-')
            .map(|(_, n)| n)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| ShardError::NoOrdinal(pod_name.to_string()))?;
        Self::new(ordinal, total)
    }

    /// Whether this shard is not the whole: `total > 1`.
    pub fn is_sharded(self) -> bool {
        self.total > 1
    }

    /// The shard, `0..total`, that the target named `name` belongs to.
    pub fn of(name: &str, total: u32) -> u32 {
        let digest = Sha256::digest(name.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(total.max(1))) as u32
    }

    /// Whether this shard collects the target named `name`.
    pub fn owns(self, name: &str) -> bool {
        Self::of(name, self.total) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {} of {} (0-based)", self.index, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_falls_to_exactly_one_shard() {
        let names: Vec<String> = (0..60).map(|i| format!("ns-{i}/pg-{i}")).collect();
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut per_shard = [0usize; 3];
        for n in &names {
            let owners: Vec<u32> = shards.iter().filter(|s| s.owns(n)).map(|s| s.index).collect();
            assert_eq!(owners.len(), 1, "{n}: {owners:?}");
            per_shard[owners[0] as usize] += 1;
        }
        // Spread, not all on one replica (60 names over 3 shards).
        assert!(per_shard.iter().all(|&c| (10..=30).contains(&c)), "{per_shard:?}");
        // Unsharded owns everything.
        assert!(names.iter().all(|n| Shard::default().owns(n)));
    }

    #[test]
    fn the_hash_is_stable() {
        // Pinned values (SHA-256 of the name, first 8 bytes big-endian, as
        // Python's hashlib gives them): a change here would move targets
        // between replicas on upgrade.
        assert_eq!((Shard::of("pg-main", 3), Shard::of("pg-main", 1000)), (1, 164));
        assert_eq!((Shard::of("pg-old", 3), Shard::of("pg-old", 1000)), (2, 384));
        assert_eq!((Shard::of("az-main", 3), Shard::of("az-main", 1000)), (2, 68));
        assert_eq!(Shard::of("pg-main", 1), 0);
    }

    #[test]
    fn shards_come_from_flags_or_a_statefulset_pod_name() {
        assert_eq!(Shard::new(2, 3), Ok(Shard { index: 2, total: 3 }));
        assert_eq!(Shard::new(3, 3), Err(ShardError::OutOfRange { index: 3, total: 3 }));
        assert_eq!(Shard::new(0, 0), Err(ShardError::NoShards));
        assert_eq!(
            Shard::from_pod_name("barman-cloud-exporter-2", 3),
            Ok(Shard { index: 2, total: 3 })
        );
        assert_eq!(Shard::from_pod_name("bce-10", 12).map(|s| s.index), Ok(10));
        assert_eq!(
            Shard::from_pod_name("bce-5", 3),
            Err(ShardError::OutOfRange { index: 5, total: 3 })
        );
        for bad in ["barman-cloud-exporter", "bce-", "bce-7f9c8d-x2kq", "", "bce-+1"] {
            assert_eq!(
                Shard::from_pod_name(bad, 3),
                Err(ShardError::NoOrdinal(bad.into())),
                "{bad}"
            );
        }
        let msg = Shard::from_pod_name("bce-7f9c8d-x2kq", 3).unwrap_err().to_string();
        assert!(msg.contains("StatefulSet"), "{msg}");
        assert_eq!(
            Shard::new(4, 3).unwrap_err().to_string(),
            "shard 4 is out of range: --total-shards is 3 (shards are numbered 0 to 2)"
        );
    }
}
