//! Read-your-writes for OpenFGA clients, opt-in (OpenFGA has no such
//! token): a Write answers the zookie of the revision it committed in the
//! `Openfga-Consistency-Token` response header (HTTP) or metadata (gRPC);
//! a query that sends it back in the same header is evaluated at that
//! revision or a newer one, whatever its `consistency` field says. Clients
//! that do not know the header are unaffected.

use verdict_storage::Revision;

use super::error::{FgaError, FgaResult};
use crate::server::consistency::Consistency;
use crate::zookie::{ZookieCodec, ZookieError};

/// The header (HTTP) and metadata key (gRPC), lower case.
pub const HEADER: &str = "openfga-consistency-token";

tokio::task_local! {
    /// The revision the current request must read at least, if it sent one.
    static AT_LEAST: Option<Revision>;
}

/// Runs `work` with the token a request sent (if any) in force.
///
/// # Errors
/// A token that is not a zookie: 2000 `validation_error` naming the header.
pub fn scoped<F: std::future::Future>(
    zookies: &ZookieCodec,
    token: Option<&str>,
    work: F,
) -> FgaResult<tokio::task::futures::TaskLocalFuture<Option<Revision>, F>> {
    let at_least = match token.map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match zookies.decode(t) {
            Ok(revision) => Some(revision),
            // Minted by another cluster: as SpiceDB's API treats it, the
            // newest revision is at least as fresh.
            Err(ZookieError::ForeignCluster) => None,
            Err(e) => {
                return Err(FgaError::validation(format!(
                    "invalid {HEADER} header: {e}"
                )))
            }
        },
    };
    Ok(AT_LEAST.scope(at_least, work))
}

/// The consistency a query asked for, tightened by a token sent with it.
pub fn consistency(asked: Consistency) -> Consistency {
    match (asked, AT_LEAST.try_with(|r| *r).ok().flatten()) {
        (Consistency::MinimizeLatency, Some(r)) => Consistency::AtLeastAsFresh(r),
        (asked, _) => asked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_tightens_minimize_latency_only() {
        let codec = ZookieCodec::new(7);
        let token = codec.encode(Revision(42));
        let got = scoped(&codec, Some(&token), async {
            (
                consistency(Consistency::MinimizeLatency),
                consistency(Consistency::FullyConsistent),
            )
        })
        .unwrap()
        .await;
        assert_eq!(
            got,
            (
                Consistency::AtLeastAsFresh(Revision(42)),
                Consistency::FullyConsistent
            )
        );
        let none = scoped(&codec, None, async {
            consistency(Consistency::MinimizeLatency)
        })
        .unwrap()
        .await;
        assert_eq!(none, Consistency::MinimizeLatency);
        let foreign = ZookieCodec::new(8).encode(Revision(1));
        let f = scoped(&codec, Some(&foreign), async {
            consistency(Consistency::MinimizeLatency)
        })
        .unwrap()
        .await;
        assert_eq!(f, Consistency::MinimizeLatency);
        let bad = scoped(&codec, Some("not a token"), async {}).err().unwrap();
        assert_eq!(bad.code, 2000);
        assert!(bad.message.contains(HEADER), "{bad}");
    }
}
