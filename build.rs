//! Build script: records the git commit and the candle version for results.json provenance.

fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    // The commit, marked "-dirty" when tracked files differ from it.
    let git_hash = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(h) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{h}-dirty"),
            _ => h,
        },
        None => "unknown".into(),
    };
    // Run again when the commit moves (the branch's ref, not only HEAD, changes on commit) or
    // a source file changes (the tree may turn dirty or clean).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/packed-refs");
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{r}");
        }
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rustc-env=QEVAL_GIT_HASH={git_hash}");
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
}
