//! A loopback stand-in for the Hugging Face Hub's download API, for tests.
//!
//! It serves the directory tree `root/<org>/<name>/...` as model repo `<org>/<name>`
//! at every revision, all resolving to one fixed commit sha, and answers the requests
//! that `hf-hub` 0.4.3's blocking (ureq) client and `huggingface_hub` (Python) send:
//!
//! * `GET|HEAD /{org}/{name}/resolve/{revision}/{path}` — hf-hub asks for metadata with
//!   `GET` + `Range: bytes=0-0` (Python uses `HEAD`) and reads `x-repo-commit`,
//!   `x-linked-etag` (else `etag`) and the total size after the `/` of `Content-Range`;
//!   it then downloads with `GET` + `Range: bytes={start}-` (resumable). Like the Hub,
//!   "LFS" files (`*.safetensors`, `*.bin`, `*.gguf`, ...) are answered with a `302`
//!   to an absolute "CDN" URL (`/cdn/{org}/{name}/{path}` on this server) and carry
//!   `x-linked-etag: "<sha256>"` and `x-linked-size`; other files are served directly
//!   with `etag: "<blob id>"`. Ranges are answered `206` with `Content-Range`.
//!   Missing files get `404` with `x-error-code: EntryNotFound` (plus `x-repo-commit`),
//!   missing repos `404` with `x-error-code: RepoNotFound`.
//! * `GET|HEAD /datasets/{org}/{name}/resolve/{revision}/{path}` — the same for datasets repo
//!   `<org>/<name>`, served from `root/datasets/<org>/<name>/`.
//! * `GET /api/models/{org}/{name}/revision/{rev}` (optionally `?blobs=true`) —
//!   `{"id", "sha": commit, "siblings": [{"rfilename", and with blobs: "size",
//!   "blobId", "lfs": {"sha256", "size", "pointerSize"}}]}`.
//!
//! With [`HubServer::start_with_token`] the `resolve` and `api` routes require
//! `Authorization: Bearer <token>` and answer `401` with `x-error-code: GatedRepo`
//! otherwise (the CDN route stays open, like the Hub's signed CDN URLs).
//!
//! Interrupted downloads: [`HubServer::cut_downloads`] makes the server drop the
//! connection after a number of body bytes of a file's data transfers (not of the
//! 1-byte `Range: bytes=0-0` metadata probes), the way a flaky network or a killed
//! proxy cuts a download mid-file; [`HubServer::served`] records every answer with its
//! `Range` header and the body bytes that actually went out.
//!
//! Blob ids: the Hub uses git's sha1 blob id for non-LFS files; sha1 is not a
//! dependency here, so the server uses the first 40 hex digits of
//! `sha256("blob <len>\0" + content)` instead — equally opaque to clients.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// File extensions the server treats as LFS files (served through a redirect).
const LFS_EXTENSIONS: &[&str] = &["safetensors", "bin", "gguf", "pt", "pth", "onnx", "h5"];

struct State {
    root: PathBuf,
    commit: String,
    token: Option<String>,
    base_url: String,
    log: Mutex<Vec<String>>,
    served: Mutex<Vec<Served>>,
    cuts: Mutex<Vec<Cut>>,
}

/// A pending connection drop: the next `times` data transfers of `file` stop after
/// `after` body bytes.
struct Cut {
    file: String,
    after: usize,
    times: usize,
}

/// One answer as it went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub method: String,
    /// Path and query, e.g. `/cdn/org/name/model.safetensors`.
    pub target: String,
    /// The request's `Range` header, if any.
    pub range: Option<String>,
    pub status: u16,
    /// Body bytes sent before the connection closed (all of them, or up to the cut).
    pub body_bytes: usize,
    /// True when the connection was dropped mid-body on purpose.
    pub cut: bool,
}

impl Served {
    /// A GET that transfers file data (not the `bytes=0-0` metadata probe).
    pub fn is_data_transfer_of(&self, file: &str) -> bool {
        self.method == "GET"
            && self.target.ends_with(&format!("/{file}"))
            && (self.target.starts_with("/cdn/") || self.target.contains("/resolve/"))
            && self.range.as_deref() != Some("bytes=0-0")
            && matches!(self.status, 200 | 206)
    }

    /// The first byte asked for: the start of `Range: bytes=N-`, 0 without a range.
    pub fn range_start(&self) -> Option<u64> {
        match &self.range {
            None => Some(0),
            Some(r) => r
                .strip_prefix("bytes=")?
                .split_once('-')?
                .0
                .trim()
                .parse()
                .ok(),
        }
    }
}

/// A running loopback Hub; stops when dropped.
pub struct HubServer {
    /// Base URL, e.g. `http://127.0.0.1:40123` (use as the Hub endpoint).
    pub url: String,
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HubServer {
    /// Serve `root/<org>/<name>/<file path>` as repo `<org>/<name>` at every revision,
    /// with the fixed commit sha `commit`.
    pub fn start(root: &Path, commit: &str) -> HubServer {
        Self::spawn(root, commit, None)
    }

    /// Like [`HubServer::start`], but every `resolve` and `api` request must carry
    /// `Authorization: Bearer <token>`; without it (or with another token) the answer
    /// is `401` with `x-error-code: GatedRepo`.
    pub fn start_with_token(root: &Path, commit: &str, token: &str) -> HubServer {
        Self::spawn(root, commit, Some(token.to_string()))
    }

    fn spawn(root: &Path, commit: &str, token: Option<String>) -> HubServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback test server");
        let addr = listener.local_addr().expect("local address of test server");
        let url = format!("http://{addr}");
        let state = Arc::new(State {
            root: root.to_path_buf(),
            commit: commit.to_string(),
            token,
            base_url: url.clone(),
            log: Mutex::new(Vec::new()),
            served: Mutex::new(Vec::new()),
            cuts: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = conn else { continue };
                    let state = Arc::clone(&state);
                    std::thread::spawn(move || serve_connection(stream, &state));
                }
            })
        };
        HubServer {
            url,
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `"METHOD /path?query"` of every request served so far, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Every answer sent so far, in the order they were sent.
    pub fn served(&self) -> Vec<Served> {
        self.state
            .served
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// The data transfers of `file` (see [`Served::is_data_transfer_of`]), in order.
    pub fn data_transfers(&self, file: &str) -> Vec<Served> {
        self.served()
            .into_iter()
            .filter(|s| s.is_data_transfer_of(file))
            .collect()
    }

    /// Drop the connection after `after` body bytes on each of the next `times` data
    /// transfers of `file` (a repo-relative path such as `model.safetensors`). Metadata
    /// probes (`Range: bytes=0-0`) are answered normally.
    pub fn cut_downloads(&self, file: &str, after: usize, times: usize) {
        if let Ok(mut cuts) = self.state.cuts.lock() {
            cuts.push(Cut {
                file: file.to_string(),
                after,
                times,
            });
        }
    }

    /// Drop the connection once, after `after` body bytes of `file`'s next data transfer.
    pub fn cut_download_once(&self, file: &str, after: usize) {
        self.cut_downloads(file, after, 1);
    }

    /// Forget every pending cut.
    pub fn clear_cuts(&self) {
        if let Ok(mut cuts) = self.state.cuts.lock() {
            cuts.clear();
        }
    }

    /// The requests that transferred file data or file metadata (`/resolve/` and
    /// `/cdn/` routes), i.e. everything except the JSON API.
    pub fn file_requests(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.contains("/resolve/") || r.contains(" /cdn/"))
            .collect()
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the loop sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Close the connection after this many body bytes (the header still announces all).
    cut_after: Option<usize>,
}

impl Response {
    fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut_after: None,
        }
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
    fn error(status: u16, code: &str, message: &str) -> Self {
        Response::new(status)
            .header("x-error-code", code)
            .header("x-error-message", message)
            .header("content-type", "application/json")
            .body(
                serde_json::json!({ "error": message })
                    .to_string()
                    .into_bytes(),
            )
    }
}

fn serve_connection(stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let Some(req) = read_request(&mut reader) else {
        return; // e.g. the wake-up connection made on drop
    };
    if let Ok(mut log) = state.log.lock() {
        log.push(format!("{} {}", req.method, req.target));
    }
    let resp = route(&req, state);
    let body_bytes = match (req.method.as_str(), resp.cut_after) {
        ("HEAD", _) => 0,
        (_, Some(n)) => n.min(resp.body.len()),
        (_, None) => resp.body.len(),
    };
    // Recorded before anything is sent, so a client that has the answer finds it logged.
    if let Ok(mut served) = state.served.lock() {
        served.push(Served {
            method: req.method.clone(),
            target: req.target.clone(),
            range: req.header("range").map(str::to_string),
            status: resp.status,
            body_bytes,
            cut: resp.cut_after.is_some(),
        });
    }
    let _ = write_response(stream, &req, resp);
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            break;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    // Requests served here have no body (GET/HEAD); drain a declared one anyway.
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > 0 {
        let mut sink = vec![0u8; len];
        reader.read_exact(&mut sink).ok()?;
    }
    Some(Request {
        method,
        target,
        headers,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Unknown",
    }
}

fn write_response(mut stream: TcpStream, req: &Request, resp: Response) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    let has_len = resp
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        head.push_str(&format!("content-length: {}\r\n", resp.body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    if req.method == "HEAD" {
        return stream.flush();
    }
    let body = match resp.cut_after {
        Some(n) => &resp.body[..n.min(resp.body.len())],
        None => &resp.body[..],
    };
    stream.write_all(body)?;
    stream.flush()?;
    if resp.cut_after.is_some() {
        // Mid-body: the client sees the connection end before Content-Length bytes.
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    Ok(())
}

/// Apply a pending cut to a data transfer of `file`.
fn maybe_cut(req: &Request, state: &State, file: &str, mut resp: Response) -> Response {
    let data = req.method == "GET"
        && matches!(resp.status, 200 | 206)
        && req.header("range") != Some("bytes=0-0");
    if !data {
        return resp;
    }
    if let Ok(mut cuts) = state.cuts.lock() {
        if let Some(i) = cuts.iter().position(|c| c.file == file && c.times > 0) {
            resp.cut_after = Some(cuts[i].after);
            cuts[i].times -= 1;
            if cuts[i].times == 0 {
                cuts.remove(i);
            }
        }
    }
    resp
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn authorized(req: &Request, state: &State) -> bool {
    match &state.token {
        None => true,
        Some(t) => req.header("authorization") == Some(format!("Bearer {t}").as_str()),
    }
}

fn route(req: &Request, state: &State) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return Response::error(405, "MethodNotAllowed", "only GET and HEAD are served");
    }
    let (path, query) = match req.target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (req.target.as_str(), ""),
    };
    // Split before decoding so that an encoded `/` (%2F) in a revision stays one segment.
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    if segs.iter().any(|s| *s == ".." || *s == ".") {
        return Response::error(400, "BadRequest", "invalid path");
    }
    match segs.as_slice() {
        ["api", "models", org, name, "revision", _] | ["api", "models", org, name] => {
            if !authorized(req, state) {
                return unauthorized(org, name);
            }
            repo_info(
                state,
                org,
                name,
                query.split('&').any(|kv| kv == "blobs=true"),
            )
        }
        ["cdn", org, name, file @ ..] if !file.is_empty() => {
            let file = file.join("/");
            match read_repo_file(state, org, name, &file) {
                Ok(data) => {
                    let etag = format!("\"{}\"", sha256_hex(&data));
                    maybe_cut(
                        req,
                        state,
                        &file,
                        serve_bytes(req, data).header("etag", etag),
                    )
                }
                Err(resp) => resp,
            }
        }
        [org, name, "resolve", _rev, file @ ..] if !file.is_empty() => {
            if !authorized(req, state) {
                return unauthorized(org, name);
            }
            resolve(req, state, org, name, &file.join("/"))
        }
        // Datasets repo `<org>/<name>`: served from `root/datasets/<org>/<name>/`.
        ["datasets", org, name, "resolve", _rev, file @ ..] if !file.is_empty() => {
            if !authorized(req, state) {
                return unauthorized(org, name);
            }
            resolve(
                req,
                state,
                &format!("datasets/{org}"),
                name,
                &file.join("/"),
            )
        }
        _ => Response::error(404, "NotFound", "no such route"),
    }
}

fn unauthorized(org: &str, name: &str) -> Response {
    Response::error(
        401,
        "GatedRepo",
        &format!(
            "Access to model {org}/{name} is restricted. You must have access to it and be \
             authenticated to access it. Please log in."
        ),
    )
}

fn repo_dir(state: &State, org: &str, name: &str) -> PathBuf {
    state.root.join(org).join(name)
}

fn read_repo_file(state: &State, org: &str, name: &str, file: &str) -> Result<Vec<u8>, Response> {
    let dir = repo_dir(state, org, name);
    if !dir.is_dir() {
        return Err(Response::error(
            404,
            "RepoNotFound",
            &format!("Repository Not Found for url: {org}/{name}"),
        ));
    }
    match std::fs::read(dir.join(file)) {
        Ok(data) => Ok(data),
        Err(_) => Err(Response::error(
            404,
            "EntryNotFound",
            &format!("{file} does not exist on \"main\""),
        )
        .header("x-repo-commit", state.commit.clone())),
    }
}

fn is_lfs(file: &str) -> bool {
    Path::new(file)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| LFS_EXTENSIONS.contains(&e))
}

fn resolve(req: &Request, state: &State, org: &str, name: &str, file: &str) -> Response {
    let data = match read_repo_file(state, org, name, file) {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    if is_lfs(file) {
        // Like the Hub: redirect to the (absolute) CDN URL; metadata on the redirect.
        let pointer = lfs_pointer(&data);
        Response::new(302)
            .header(
                "location",
                format!("{}/cdn/{org}/{name}/{file}", state.base_url),
            )
            .header("x-repo-commit", state.commit.clone())
            .header("x-linked-etag", format!("\"{}\"", sha256_hex(&data)))
            .header("x-linked-size", data.len().to_string())
            .header("etag", format!("\"{}\"", blob_id(pointer.as_bytes())))
    } else {
        let resp = serve_bytes(req, data)
            .header("x-repo-commit", state.commit.clone())
            .header(
                "etag",
                format!("\"{}\"", blob_id_of_file(state, org, name, file)),
            );
        maybe_cut(req, state, file, resp)
    }
}

fn blob_id_of_file(state: &State, org: &str, name: &str, file: &str) -> String {
    std::fs::read(repo_dir(state, org, name).join(file))
        .map(|d| blob_id(&d))
        .unwrap_or_default()
}

/// Serve `data`, honouring a single `Range: bytes=a-b` / `bytes=a-` header.
fn serve_bytes(req: &Request, data: Vec<u8>) -> Response {
    let total = data.len();
    let base = Response::new(200)
        .header("accept-ranges", "bytes")
        .header("content-type", "application/octet-stream");
    let Some(range) = req.header("range") else {
        return base.body(data);
    };
    let Some((start, end)) = parse_range(range) else {
        return base.body(data);
    };
    if start >= total {
        return Response::new(416).header("content-range", format!("bytes */{total}"));
    }
    let end = end.map_or(total - 1, |e| e.min(total - 1));
    if end < start {
        return Response::new(416).header("content-range", format!("bytes */{total}"));
    }
    let mut resp = base.body(data[start..=end].to_vec());
    resp.status = 206;
    resp.header("content-range", format!("bytes {start}-{end}/{total}"))
}

fn parse_range(v: &str) -> Option<(usize, Option<usize>)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start = a.trim().parse().ok()?;
    let end = if b.trim().is_empty() {
        None
    } else {
        Some(b.trim().parse().ok()?)
    };
    Some((start, end))
}

fn repo_info(state: &State, org: &str, name: &str, blobs: bool) -> Response {
    let dir = repo_dir(state, org, name);
    if !dir.is_dir() {
        return Response::error(
            404,
            "RepoNotFound",
            &format!("Repository Not Found for url: {org}/{name}"),
        );
    }
    let mut files = Vec::new();
    list_files(&dir, "", &mut files);
    files.sort();
    let siblings: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            if !blobs {
                return serde_json::json!({ "rfilename": f });
            }
            let data = std::fs::read(dir.join(f)).unwrap_or_default();
            if is_lfs(f) {
                let pointer = lfs_pointer(&data);
                serde_json::json!({
                    "rfilename": f,
                    "size": data.len(),
                    "blobId": blob_id(pointer.as_bytes()),
                    "lfs": { "sha256": sha256_hex(&data), "size": data.len(), "pointerSize": pointer.len() },
                })
            } else {
                serde_json::json!({ "rfilename": f, "size": data.len(), "blobId": blob_id(&data) })
            }
        })
        .collect();
    let body = serde_json::json!({
        "id": format!("{org}/{name}"),
        "modelId": format!("{org}/{name}"),
        "sha": state.commit,
        "siblings": siblings,
    });
    Response::new(200)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
}

fn list_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        if path.is_dir() {
            list_files(&path, &rel, out);
        } else {
            out.push(rel);
        }
    }
}

fn lfs_pointer(data: &[u8]) -> String {
    format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
        sha256_hex(data),
        data.len()
    )
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Stand-in for git's sha1 blob id (see the module docs).
fn blob_id(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(format!("blob {}\0", data.len()).as_bytes());
    h.update(data);
    hex(&h.finalize())[..40].to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
