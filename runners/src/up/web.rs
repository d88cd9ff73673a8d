//! The web client's built files, served by `confab up`: embedded in the binary from `web/dist`
//! at build time, or read from a folder (`--web-dir`, for development).
//!
//! Paths are checked before they touch the file system: only plain segments (no `..`, no hidden
//! files, no backslashes) under the folder are read. A path without a file extension that names
//! no file gets `index.html`, so the client's own routes survive a reload; a folder gets its
//! `index.html` (`/docs/` is the API reference page). Hashed assets are cached for a year;
//! pages are always revalidated so a new build shows at once.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

/// `web/dist` as it was when this binary was built (nothing when it was not built: then
/// [`WebFiles::is_built`] is false and `/` explains). Source maps stay out of the binary.
#[derive(rust_embed::RustEmbed)]
#[folder = "../web/dist"]
#[allow_missing = true]
#[exclude = "*.map"]
struct Embedded;

/// Where the client's files come from.
#[derive(Debug, Clone)]
pub(crate) enum WebFiles {
    /// Compiled into the binary.
    Embedded,
    /// A folder of built files (`--web-dir`).
    Dir(Arc<PathBuf>),
}

impl WebFiles {
    /// The folder when given, else the embedded files.
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        match dir {
            Some(dir) => Self::Dir(Arc::new(dir)),
            None => Self::Embedded,
        }
    }

    /// Whether the client is there (an `index.html`).
    pub(crate) fn is_built(&self) -> bool {
        match self {
            Self::Embedded => Embedded::get("index.html").is_some(),
            Self::Dir(root) => root.join("index.html").is_file(),
        }
    }

    /// Where the files come from, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Embedded => "the web client built into this binary".to_owned(),
            Self::Dir(root) => format!("the web client in {}", root.display()),
        }
    }

    /// The bytes of `relative` (a checked path, `/`-separated), if it names a file.
    async fn read(&self, relative: &str) -> Option<Cow<'static, [u8]>> {
        match self {
            Self::Embedded => Embedded::get(relative).map(|file| file.data),
            Self::Dir(root) => {
                let path = root.join(relative);
                if !path.is_file() {
                    return None;
                }
                tokio::fs::read(path).await.ok().map(Cow::Owned)
            }
        }
    }
}

/// The `/`-separated path under the root that `path` names, or `None` for a path that tries
/// to leave it.
fn resolve(path: &str) -> Option<String> {
    let mut segments = Vec::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains('\\') || segment.contains('\0') {
            return None;
        }
        segments.push(segment);
    }
    Some(segments.join("/"))
}

fn content_type(path: &str) -> &'static str {
    match Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
    {
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
pub(crate) async fn serve_file(State(web): State<WebFiles>, uri: Uri) -> Response {
    if !web.is_built() {
        return not_built(&web);
    }
    let Some(relative) = resolve(uri.path()) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let is_route = Path::new(uri.path()).extension().is_none();
    let index = if relative.is_empty() {
        "index.html".to_owned()
    } else {
        format!("{relative}/index.html")
    };
    let mut found = None;
    for candidate in [relative.as_str(), index.as_str()] {
        if !candidate.is_empty() {
            if let Some(bytes) = web.read(candidate).await {
                found = Some((candidate.to_owned(), bytes));
                break;
            }
        }
    }
    if found.is_none() && is_route {
        found = web
            .read("index.html")
            .await
            .map(|bytes| ("index.html".to_owned(), bytes));
    }
    let Some((path, bytes)) = found else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let cache = if path.starts_with("assets/") {
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

fn not_built(web: &WebFiles) -> Response {
    let page = match web {
        WebFiles::Dir(root) => {
            // The folder is the operator's own flag value; escape it anyway, it lands in HTML.
            let folder = root
                .display()
                .to_string()
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            format!(
                "<!doctype html><meta charset=utf-8><title>confab</title>\
                 <h1>confab is running, but the web client is not built</h1>\
                 <p>No <code>index.html</code> in <code>{folder}</code> (<code>--web-dir</code>). \
                 Build it with <code>npm ci --prefix web --omit=dev &amp;&amp; npm run build \
                 --prefix web</code> and reload, or leave out <code>--web-dir</code> to serve the \
                 client built into the binary. The APIs under <code>/api/v1</code> and \
                 <code>/openapi.json</code> work already.</p>"
            )
        }
        WebFiles::Embedded => "<!doctype html><meta charset=utf-8><title>confab</title>\
             <h1>confab is running, but this binary was built without the web client</h1>\
             <p><code>web/dist</code> was missing when it was compiled. Build the client with \
             <code>npm ci --prefix web --omit=dev &amp;&amp; npm run build --prefix web</code>, \
             then the binary again (<code>cargo build -p confab</code>), or point \
             <code>--web-dir</code> at a built client. The APIs under <code>/api/v1</code> and \
             <code>/openapi.json</code> work already.</p>"
            .to_owned(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_folder() {
        assert_eq!(resolve("/assets/app.js").as_deref(), Some("assets/app.js"));
        assert_eq!(resolve("//docs/").as_deref(), Some("docs"));
        assert_eq!(resolve("/").as_deref(), Some(""));
        for bad in ["/../etc/passwd", "/assets/../../x", "/.env", "/a\\..\\b"] {
            assert_eq!(resolve(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("a/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
