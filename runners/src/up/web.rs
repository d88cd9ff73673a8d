//! The web client's built files (`web/dist`), served by `confab up`.
//!
//! Paths are checked before they touch the file system: only plain segments (no `..`, no hidden
//! files, no backslashes) under the folder are read. A path without a file extension that names
//! no file gets `index.html`, so the client's own routes survive a reload. Hashed assets are
//! cached for a year; `index.html` is always revalidated so a new build shows at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

/// The folder of built files.
#[derive(Debug, Clone)]
pub(crate) struct WebDir {
    root: Arc<PathBuf>,
}

impl WebDir {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root: Arc::new(root),
        }
    }

    /// Whether the client was built (the folder holds an `index.html`).
    pub(crate) fn is_built(&self) -> bool {
        self.root.join("index.html").is_file()
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

/// The file under `root` that `path` names, or `None` for a path that tries to leave it.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let mut resolved = root.to_path_buf();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains('\\') || segment.contains('\0') {
            return None;
        }
        resolved.push(segment);
    }
    Some(resolved)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Serves one file of the client (the router's fallback).
pub(crate) async fn serve_file(State(web): State<WebDir>, uri: Uri) -> Response {
    if !web.is_built() {
        return not_built(web.root());
    }
    let Some(mut path) = resolve(web.root(), uri.path()) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    if path.is_dir() {
        path.push("index.html");
    }
    let is_route = Path::new(uri.path()).extension().is_none();
    let path = if !path.is_file() && is_route {
        web.root().join("index.html")
    } else {
        path
    };
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let cache = if path.starts_with(web.root().join("assets")) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&path)),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        bytes,
    )
        .into_response()
}

fn not_built(root: &Path) -> Response {
    // The folder is the operator's own flag value; escape it anyway, it lands in HTML.
    let folder = root
        .display()
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>confab</title>\
         <h1>confab is running, but the web client is not built</h1>\
         <p>No <code>index.html</code> in <code>{folder}</code>. Build it with \
         <code>npm ci --prefix web --omit=dev &amp;&amp; npm run build --prefix web</code> and reload, \
         or point <code>--web-dir</code> at a built client. The APIs under <code>/api/v1</code> \
         work already.</p>"
    );
    (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_folder() {
        let root = Path::new("/srv/web");
        assert_eq!(
            resolve(root, "/assets/app.js"),
            Some(PathBuf::from("/srv/web/assets/app.js"))
        );
        assert_eq!(resolve(root, "/"), Some(PathBuf::from("/srv/web")));
        for bad in ["/../etc/passwd", "/assets/../../x", "/.env", "/a\\..\\b"] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(
            content_type(Path::new("a/index.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("x.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x")), "application/octet-stream");
    }
}
