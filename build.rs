//! Records the git commit the binary is built from, for `faust-rs --version`
//! (`FAUST_RS_GIT_COMMIT`; "unknown" outside a git checkout, e.g. a packaged source tree), and
//! hands release links the order of the functions an idle worker runs.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    output.status.success().then(|| text.trim().to_string())
}

fn main() {
    if std::env::var("PROFILE").as_deref() == Ok("release") && links_with_rust_lld() {
        order_idle_functions_first();
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FAUST_RS_GIT_COMMIT={commit}");
    // Rebuilt when HEAD moves: a new commit, a checkout.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let mut watched = vec![format!("{dir}/HEAD"), format!("{dir}/packed-refs")];
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(format!("{dir}/{reference}"));
        }
        for path in watched.iter().filter(|p| Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// rustc links x86_64 Linux binaries with its own LLD unless told otherwise; GNU ld, which
/// other targets and `-C linker-features=-lld` get, knows no symbol ordering file.
fn links_with_rust_lld() -> bool {
    let env = |name| std::env::var(name).unwrap_or_default();
    env("TARGET") == "x86_64-unknown-linux-gnu"
        && !env("CARGO_ENCODED_RUSTFLAGS").contains("linker")
}

/// Packs the functions listed by scripts/symbol-order.sh at the start of the release binary's
/// code: the kernel maps code 64 KiB around each page a process touches, so an idle worker
/// whose live functions lie scattered keeps most of the 13 MiB of text resident (8.6 MiB;
/// packed: 3.7). rustc links with LLD, which takes the list as is; names it no longer finds
/// (a rustc or dependency upgrade) are placed as without the list, silently.
fn order_idle_functions_first() {
    let order = concat!(env!("CARGO_MANIFEST_DIR"), "/link/symbol-order.txt");
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={order}");
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    println!("cargo:rerun-if-changed={order}");
}
