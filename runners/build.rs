//! Recompiles the runners when the web client's build (`web/dist`) appears, changes or goes:
//! `confab up` embeds it (rust-embed reads it while this crate compiles). Tells the crate and
//! its tests whether a build was there (`CONFAB_WEB_EMBEDDED`).

use std::path::Path;

fn main() {
    let dist = Path::new("../web/dist");
    let built = dist.join("index.html").is_file();
    if dist.exists() {
        println!("cargo:rerun-if-changed=../web/dist");
    } else {
        // Watching a missing path would rerun this on every build; web/ gains the entry.
        println!("cargo:rerun-if-changed=../web");
    }
    println!("cargo:rustc-env=CONFAB_WEB_EMBEDDED={}", u8::from(built));
}
