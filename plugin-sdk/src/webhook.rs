//! Checking webhooks a supplier pushes: HMAC signatures and headers.
//!
//! ```no_run
//! # use daifa_plugin_sdk::prelude::*;
//! # fn f(req: CallbackRequest) -> Result<(), AdapterError> {
//! let secret = config::require("webhook_secret")?;
//! let signature = req.header("x-signature").unwrap_or_default();
//! if !webhook::verify_hmac_sha256(&secret, &req.body, signature) {
//!     // answer 401 and store nothing
//! }
//! # Ok(()) }
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::CallbackRequest;

/// `true` if `signature` is the HMAC-SHA256 of `message` under `secret`.
///
/// The signature may be hex (either case) or base64 (standard or URL-safe,
/// padded or not), optionally prefixed `sha256=` as GitHub-style senders
/// do; surrounding whitespace is ignored. Anything that does not decode is
/// `false`. The comparison takes the same time wherever the bytes differ.
pub fn verify_hmac_sha256(secret: impl AsRef<[u8]>, message: &[u8], signature: &str) -> bool {
    let sig = signature.trim();
    let sig = match sig.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("sha256=") => &sig[7..],
        _ => sig,
    };
    let Some(expected) = decode_signature(sig) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_ref()) else { return false };
    mac.update(message);
    mac.verify_slice(&expected).is_ok()
}

/// The HMAC-SHA256 of `message` under `secret`, lower-case hex (to sign
/// what you send, or to build test fixtures).
pub fn hmac_sha256_hex(secret: impl AsRef<[u8]>, message: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail; an empty MAC
    // would never verify anyway.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_ref()) else { return String::new() };
    mac.update(message);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// `true` if the shared secret a sender presented equals the expected one,
/// compared in constant time (for `X-Callback-Token`-style headers; use
/// [`verify_hmac_sha256`] when the sender signs the body instead).
pub fn secrets_match(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    // The length is not secret; every byte is compared whatever differs.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode_signature(sig: &str) -> Option<Vec<u8>> {
    // A SHA-256 MAC is 32 bytes: 64 hex digits, or 43/44 base64 characters.
    if sig.len() == 64 && sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (0..64).step_by(2).map(|i| u8::from_str_radix(sig.get(i..i + 2)?, 16).ok()).collect();
    }
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(sig).ok())
}

impl CallbackRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231 test case 2.
    const KEY: &str = "Jefe";
    const MSG: &[u8] = b"what do ya want for nothing?";
    const HEX: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn accepts_hex_base64_and_prefix() {
        assert_eq!(hmac_sha256_hex(KEY, MSG), HEX);
        let b64 = STANDARD
            .encode((0..64).step_by(2).map(|i| u8::from_str_radix(&HEX[i..i + 2], 16).unwrap()).collect::<Vec<_>>());
        for sig in [
            HEX.to_string(),
            HEX.to_uppercase(),
            format!("sha256={HEX}"),
            format!(" SHA256={b64} "),
            b64.clone(),
            b64.trim_end_matches('=').to_string(),
        ] {
            assert!(verify_hmac_sha256(KEY, MSG, &sig), "{sig}");
        }
    }

    #[test]
    fn refuses_wrong_or_garbled_signatures() {
        let mut wrong = HEX.to_string();
        wrong.replace_range(0..1, "6");
        for sig in [wrong.as_str(), "", "sha256=", "not a signature", &HEX[..62]] {
            assert!(!verify_hmac_sha256(KEY, MSG, sig), "{sig}");
        }
        assert!(!verify_hmac_sha256("other key", MSG, HEX));
        assert!(!verify_hmac_sha256(KEY, b"tampered", HEX));
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(secrets_match("s3cret", "s3cret"));
        for given in ["", "s3cre", "s3cret!", "S3cret"] {
            assert!(!secrets_match(given, "s3cret"), "{given}");
        }
    }

    #[test]
    fn callback_header_is_case_insensitive() {
        let req = CallbackRequest {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: vec![("X-Signature".into(), "abc".into())],
            body: vec![],
        };
        assert_eq!(req.header("x-signature"), Some("abc"));
        assert_eq!(req.header("x-other"), None);
    }
}
