//! Error wording for the Hub: owns turning hf-hub's raw HTTP and transport errors into
//! messages that say what failed and what to do (HF_TOKEN, the licence page, HF_ENDPOINT,
//! HF_HUB_OFFLINE, ...), telling transient failures (worth another attempt) from final ones,
//! and redacting the token from every message. It must not decide what to fetch or retry.

use super::resolve::{kind_name, RemoteRepo, Target};
use anyhow::anyhow;
use hf_hub::api::sync::ApiError;

impl Target<'_> {
    /// An error whose text has the token (if any) redacted.
    pub(super) fn error(&self, msg: String) -> anyhow::Error {
        anyhow!(redact(&msg, self.cfg.token.as_deref()))
    }

    pub(super) fn offline_file_error(&self, file: &str) -> anyhow::Error {
        let known_absent = self
            .cache
            .commit_for(self.revision)
            .filter(|c| self.cache.no_exist_path(c, file).exists())
            .map(|c| format!(" (the Hub reported that it does not exist at commit {c})"))
            .unwrap_or_default();
        self.error(format!(
            "offline mode (HF_HUB_OFFLINE) is on and {} is not in the Hugging Face cache at \
             {}{known_absent}. Run once with network access (HF_HUB_OFFLINE unset) to download \
             it, or point HF_HUB_CACHE/HF_HOME at the cache that has it.",
            self.what(Some(file)),
            self.cfg.cache_dir.display()
        ))
    }

    pub(super) fn not_found_error(&self, file: &str, remote: &RemoteRepo) -> anyhow::Error {
        let mut listing: Vec<&str> = remote.files.keys().map(String::as_str).take(20).collect();
        if remote.files.len() > listing.len() {
            listing.push("...");
        }
        self.error(format!(
            "{} not found (404): the repo at commit {} has no such file; files there: {}. \
             See {}/tree/{}",
            self.what(Some(file)),
            remote.commit,
            if listing.is_empty() {
                "none".to_string()
            } else {
                listing.join(", ")
            },
            self.web_url(),
            self.revision
        ))
    }

    /// The repo's page on the Hub: `{endpoint}/{repo}`, or `{endpoint}/datasets/{repo}`.
    fn web_url(&self) -> String {
        match self.kind {
            hf_hub::RepoType::Dataset => format!("{}/datasets/{}", self.cfg.endpoint(), self.repo),
            _ => format!("{}/{}", self.cfg.endpoint(), self.repo),
        }
    }

    /// Turn an hf-hub error into a message that says what went wrong and what to do.
    pub(super) fn api_error(&self, err: ApiError, file: Option<&str>) -> anyhow::Error {
        let what = self.what(file);
        let endpoint = self.cfg.endpoint();
        let msg = match err {
            ApiError::RequestError(e) => {
                let summary = e.to_string();
                let kind = format!("{:?}", e.kind());
                let io_kind = io_error_kind(&*e);
                match (*e).into_response() {
                    Some(resp) => {
                        let code = resp.header("x-error-code").unwrap_or_default().to_string();
                        let server = resp
                            .header("x-error-message")
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default();
                        self.http_error_message(resp.status(), &code, &server, file, &what)
                    }
                    None => self.transport_message(&kind, io_kind, &summary, &what),
                }
            }
            ApiError::MissingHeader(h) | ApiError::InvalidHeader(h) => format!(
                "{endpoint} did not answer like the Hugging Face Hub while fetching {what}: \
                 response header `{h}` is missing or invalid. Check HF_ENDPOINT (it must point \
                 at the Hub or a Hub mirror) and any proxy in between."
            ),
            ApiError::LockAcquisition(p) => format!(
                "could not lock {} to download {what}: another process is downloading the same \
                 file. Wait for it to finish (or delete the lock file if no such process runs).",
                p.display()
            ),
            ApiError::TooManyRetries(inner) => {
                let inner = self.api_error(*inner, file);
                format!("download kept failing after retries: {inner}")
            }
            ApiError::IoError(e) if is_network_io(e.kind()) => {
                self.transport_message("Io", Some(e.kind()), &e.to_string(), &what)
            }
            ApiError::InvalidResume => format!(
                "the partial download of {what} in {} is corrupt (larger than the file); delete \
                 the `*.part` files there and try again",
                self.cache.dir.join("blobs").display()
            ),
            other => format!(
                "failed to fetch {what} from {endpoint} into the cache at {}: {other}",
                self.cfg.cache_dir.display()
            ),
        };
        self.error(msg)
    }

    pub(super) fn http_error_message(
        &self,
        status: u16,
        code: &str,
        server: &str,
        file: Option<&str>,
        what: &str,
    ) -> String {
        let endpoint = self.cfg.endpoint();
        let (repo, revision) = (self.repo, self.revision);
        let kind = kind_name(self.kind);
        let url = self.web_url();
        let token_state = if self.cfg.token.is_some() {
            "a token was sent (from HF_TOKEN or the token file) but it was refused or has no \
             access to this repo"
        } else {
            "no token was sent (HF_TOKEN is not set and there is no token file)"
        };
        match (status, code) {
            (401 | 403, "RepoNotFound") => format!(
                "cannot access {what}: HTTP {status}, repository not found or private on \
                 {endpoint}{server}; {token_state}. Check the repo id; for a private repo set \
                 HF_TOKEN to a token with read access."
            ),
            (401 | 403, _) => format!(
                "access to {what} was denied: HTTP {status}{server}; {token_state}. If the model \
                 is gated, open {url} while logged in, accept its licence, then set \
                 HF_TOKEN to a read token of that account (https://huggingface.co/settings/tokens)."
            ),
            (404, "RepoNotFound") => format!(
                "{kind} `{repo}` not found on {endpoint} (HTTP 404){server}. Check the repo id \
                 (a private repo also needs HF_TOKEN)."
            ),
            (404, "RevisionNotFound") => format!(
                "revision `{revision}` not found in {kind} `{repo}` on {endpoint} (HTTP \
                 404){server}. Check the branch, tag or commit sha."
            ),
            (404, _) => match file {
                Some(f) => format!(
                    "`{f}` not found (HTTP 404) in {kind} `{repo}` at revision `{revision}` on \
                     {endpoint}{server}. See {url}/tree/{revision}"
                ),
                None => format!(
                    "{what} not found on {endpoint} (HTTP 404){server}. Check the repo id, the \
                     revision, and HF_ENDPOINT."
                ),
            },
            (429, _) => format!(
                "the Hub at {endpoint} is rate-limiting requests (HTTP 429) while fetching \
                 {what}. Wait a bit and retry; authenticated requests (HF_TOKEN) get higher \
                 limits."
            ),
            (500..=599, _) => format!(
                "the Hub at {endpoint} failed with HTTP {status} while fetching {what}{server}. \
                 Retry later, or set HF_HUB_OFFLINE=1 to use only files already in the cache \
                 ({}).",
                self.cfg.cache_dir.display()
            ),
            _ => format!(
                "unexpected HTTP {status} from {endpoint} while fetching {what}{server}{}",
                if code.is_empty() {
                    String::new()
                } else {
                    format!(" [x-error-code: {code}]")
                }
            ),
        }
    }

    pub(super) fn transport_message(
        &self,
        kind: &str,
        io_kind: Option<std::io::ErrorKind>,
        summary: &str,
        what: &str,
    ) -> String {
        use std::io::ErrorKind as K;
        let endpoint = self.cfg.endpoint();
        let cache = self.cfg.cache_dir.display();
        let unreachable = matches!(kind, "ConnectionFailed" | "Dns" | "ProxyConnect")
            || matches!(
                io_kind,
                Some(K::ConnectionRefused | K::TimedOut | K::AddrNotAvailable | K::NotConnected)
            );
        if unreachable {
            format!(
                "cannot reach the Hugging Face Hub at {endpoint} to fetch {what}: {summary}. \
                 Check the network, proxy settings and HF_ENDPOINT; to use only files already \
                 in the cache ({cache}) set HF_HUB_OFFLINE=1."
            )
        } else {
            format!(
                "network error while fetching {what} from {endpoint}: {summary}. Run again to \
                 resume (partial downloads are kept in the cache at {cache}); set \
                 HF_HUB_OFFLINE=1 to use only cached files."
            )
        }
    }
}

/// I/O error kinds of a connection that broke; worth another attempt.
fn is_network_io(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        kind,
        K::UnexpectedEof
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::ConnectionRefused
            | K::BrokenPipe
            | K::TimedOut
            | K::Interrupted
            | K::WouldBlock
            | K::NotConnected
    )
}

/// A failure another attempt may get past: a broken connection, a transport error, or
/// the Hub being busy (429, 5xx). Refusals (401, 403, 404, ...) are final.
pub(super) fn is_transient(err: &ApiError) -> bool {
    match err {
        ApiError::IoError(e) => is_network_io(e.kind()),
        ApiError::RequestError(e) => match &**e {
            ureq::Error::Status(code, _) => *code == 429 || *code >= 500,
            ureq::Error::Transport(_) => true,
        },
        ApiError::TooManyRetries(inner) => is_transient(inner),
        _ => false,
    }
}

fn io_error_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = e.source();
    }
    None
}

fn redact(msg: &str, token: Option<&str>) -> String {
    match token.map(str::trim) {
        Some(t) if t.len() >= 4 => msg.replace(t, "<redacted>"),
        _ => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(
            redact("token hf_abcdef in text", Some("hf_abcdef")),
            "token <redacted> in text"
        );
        assert_eq!(redact("text", None), "text");
    }
}
