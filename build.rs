//! Build script: records the git commit and the candle version for results.json provenance.

fn main() {
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=QEVAL_GIT_HASH={git}");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut candle = "unknown".to_string();
    let mut in_candle = false;
    for line in lock.lines() {
        if line == "name = \"candle-core\"" {
            in_candle = true;
        } else if in_candle {
            if let Some(v) = line.strip_prefix("version = \"") {
                candle = v.trim_end_matches('"').to_string();
                break;
            }
        }
    }
    println!("cargo:rustc-env=QEVAL_CANDLE_VERSION={candle}");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=.git/HEAD");
}
