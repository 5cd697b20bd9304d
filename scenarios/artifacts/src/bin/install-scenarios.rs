//! Copies every built scenario component (not the test fixtures) to `scenarios/NAME.wasm` in the
//! repository, where `runner exec scenarios/NAME.wasm` finds it. `cargo xtask setup` runs this.

use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

fn main() -> anyhow::Result<()> {
    let scenarios_dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("scenarios/artifacts has a parent")?;
    for (name, built) in scenario_artifacts::SCENARIOS {
        let bytes = std::fs::read(built).with_context(|| format!("read the built component {built}"))?;
        let destination = scenarios_dir.join(format!("{name}.wasm"));
        std::fs::write(&destination, &bytes).with_context(|| format!("write {}", destination.display()))?;
        let hash: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        println!("installed {} ({} KB, sha256:{hash})", destination.display(), bytes.len().div_ceil(1024));
    }
    Ok(())
}
