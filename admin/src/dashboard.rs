//! The dashboard: three static files embedded at compile time and served by
//! the admin thread, so the gateway ships as one binary and the page works
//! offline (no CDN, no build step).

/// One embedded file.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    /// Request path it is served at.
    pub path: &'static str,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// File contents.
    pub body: &'static str,
}

const INDEX: Asset = Asset {
    path: "/index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../dashboard/index.html"),
};

/// Every embedded file; `/` is an alias of `/index.html`.
pub static ASSETS: [Asset; 3] = [
    INDEX,
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../dashboard/app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../dashboard/style.css"),
    },
];

/// The asset served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}
