use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use ordo_domain::auth::{AccessClaims, AccessTokens, InvalidToken, Principal, Role, UserId};
use quick_cache::sync::Cache;
use serde::{Deserialize, Serialize};

/// How access tokens are signed and checked.
#[derive(Clone)]
pub struct JwtConfig {
    /// The HMAC key (at least 32 bytes).
    pub secret: Vec<u8>,
    /// `iss`: who issues the tokens.
    pub issuer: String,
    /// `aud`: who accepts them.
    pub audience: String,
    /// The clock skew tolerated between issuer and checker, on `exp` and `iat`.
    pub leeway: TimeDelta,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// Tokens whose signature was checked, kept so that a caller presenting the same
/// token again (every request of a session does) costs a hash look-up instead of
/// base64, JSON and HMAC work. Only genuine tokens enter it, and the times are
/// checked against the clock on every use, so it changes no answer.
const VERIFIED_TOKENS: usize = 16_384;

/// HS256 access tokens. Only HS256 is accepted: `alg: none`, an RS/HS confusion or
/// any other algorithm is refused before the signature is looked at.
#[derive(Clone)]
pub struct JwtTokens {
    verified: Arc<Cache<String, AccessClaims>>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    leeway: TimeDelta,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtTokens")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    iat: i64,
    exp: i64,
    iss: String,
    aud: String,
}

impl JwtTokens {
    /// Tokens under `config`.
    ///
    /// # Errors
    /// When the secret is shorter than 32 bytes.
    pub fn new(config: JwtConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.secret.len() >= 32,
            "the JWT secret must be at least 32 bytes"
        );
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        // Expiry is checked against the service's clock below, not the system's,
        // so that a controlled clock governs tokens as it governs everything else.
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp", "iat", "iss", "aud", "sub"]
            .into_iter()
            .map(str::to_owned)
            .collect::<HashSet<_>>();
        Ok(Self {
            verified: Arc::new(Cache::new(VERIFIED_TOKENS)),
            encoding: EncodingKey::from_secret(&config.secret),
            decoding: DecodingKey::from_secret(&config.secret),
            validation,
            leeway: config.leeway,
            issuer: config.issuer,
            audience: config.audience,
        })
    }

    fn principal(claims: &Claims) -> Result<Principal, InvalidToken> {
        let forged = |what: &str| InvalidToken::Forged(what.to_owned());
        let id = uuid::Uuid::parse_str(&claims.sub).map_err(|_| forged("sub is not an id"))?;
        match (claims.kind.as_str(), claims.role.as_deref()) {
            ("user", Some(role)) => Ok(Principal::User {
                id: UserId::from_uuid(id),
                role: Role::parse(role).map_err(|_| forged("unknown role"))?,
            }),
            ("client", None) => Ok(Principal::Client { id }),
            _ => Err(forged("unknown kind")),
        }
    }
}

impl AccessTokens for JwtTokens {
    fn issue(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let (kind, role) = match claims.principal {
            Principal::User { role, .. } => ("user", Some(role.as_str().to_owned())),
            Principal::Client { .. } => ("client", None),
        };
        let body = Claims {
            sub: claims.principal.id().to_string(),
            kind: kind.to_owned(),
            role,
            iat: claims.issued_at.timestamp(),
            exp: claims.expires_at.timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        Ok(encode(
            &Header::new(Algorithm::HS256),
            &body,
            &self.encoding,
        )?)
    }

    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, InvalidToken> {
        let claims = match self.verified.get(token) {
            Some(claims) => claims,
            None => {
                let claims = self.decode_genuine(token)?;
                self.verified.insert(token.to_owned(), claims);
                claims
            }
        };
        if now >= claims.expires_at + self.leeway {
            return Err(InvalidToken::Expired);
        }
        if claims.issued_at > now + self.leeway {
            return Err(InvalidToken::NotYetValid);
        }
        Ok(claims)
    }
}

impl JwtTokens {
    /// The claims of a token signed with our key, times not yet checked.
    fn decode_genuine(&self, token: &str) -> Result<AccessClaims, InvalidToken> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| InvalidToken::Forged(e.to_string()))?;
        let claims = data.claims;
        let at = |seconds: i64| {
            DateTime::from_timestamp(seconds, 0)
                .ok_or_else(|| InvalidToken::Forged("a timestamp out of range".to_owned()))
        };
        Ok(AccessClaims {
            principal: Self::principal(&claims)?,
            issued_at: at(claims.iat)?,
            expires_at: at(claims.exp)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn config() -> JwtConfig {
        JwtConfig {
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            issuer: "ordo".into(),
            audience: "ordo-api".into(),
            leeway: TimeDelta::seconds(30),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn staff_claims() -> AccessClaims {
        AccessClaims {
            principal: Principal::User {
                id: UserId::from_uuid(uuid::Uuid::from_u128(7)),
                role: Role::Staff,
            },
            issued_at: now(),
            expires_at: now() + TimeDelta::minutes(15),
        }
    }

    fn b64(json: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn an_issued_token_verifies_to_its_claims() {
        let tokens = JwtTokens::new(config()).unwrap();
        let token = tokens.issue(&staff_claims()).unwrap();
        assert_eq!(tokens.verify(&token, now()).unwrap(), staff_claims());
    }

    #[test]
    fn an_expired_token_is_refused_after_the_leeway_and_not_before() {
        let tokens = JwtTokens::new(config()).unwrap();
        let token = tokens.issue(&staff_claims()).unwrap();
        let expiry = now() + TimeDelta::minutes(15);
        assert!(
            tokens
                .verify(&token, expiry + TimeDelta::seconds(29))
                .is_ok()
        );
        assert_eq!(
            tokens.verify(&token, expiry + TimeDelta::seconds(30)),
            Err(InvalidToken::Expired)
        );
    }

    #[test]
    fn a_remembered_token_vouches_for_no_other_string() {
        let tokens = JwtTokens::new(config()).unwrap();
        let token = tokens.issue(&staff_claims()).unwrap();
        assert!(tokens.verify(&token, now()).is_ok());
        let (unsigned, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{unsigned}.{flipped}{}", &signature[1..]);
        assert!(matches!(
            tokens.verify(&tampered, now()),
            Err(InvalidToken::Forged(_))
        ));
        assert!(matches!(
            tokens.verify(&format!("{token} "), now()),
            Err(InvalidToken::Forged(_))
        ));
        assert!(tokens.verify(&token, now()).is_ok());
    }

    #[test]
    fn a_token_from_the_future_is_refused() {
        let tokens = JwtTokens::new(config()).unwrap();
        let token = tokens.issue(&staff_claims()).unwrap();
        assert_eq!(
            tokens.verify(&token, now() - TimeDelta::minutes(5)),
            Err(InvalidToken::NotYetValid)
        );
    }

    #[test]
    fn a_token_for_another_audience_or_issuer_is_refused() {
        let tokens = JwtTokens::new(config()).unwrap();
        for other in [
            JwtConfig {
                audience: "someone-else".into(),
                ..config()
            },
            JwtConfig {
                issuer: "someone-else".into(),
                ..config()
            },
        ] {
            let token = JwtTokens::new(other)
                .unwrap()
                .issue(&staff_claims())
                .unwrap();
            assert!(matches!(
                tokens.verify(&token, now()),
                Err(InvalidToken::Forged(_))
            ));
        }
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let tokens = JwtTokens::new(config()).unwrap();
        let token = tokens.issue(&staff_claims()).unwrap();
        let (head_and_body, signature) = token.rsplit_once('.').unwrap();
        let (head, _) = head_and_body.split_once('.').unwrap();
        let admin = format!(
            r#"{{"sub":"{}","kind":"user","role":"admin","iat":{},"exp":{},"iss":"ordo","aud":"ordo-api"}}"#,
            uuid::Uuid::from_u128(7),
            now().timestamp(),
            (now() + TimeDelta::minutes(15)).timestamp()
        );
        let forged = format!("{head}.{}.{signature}", b64(&admin));
        assert!(matches!(
            tokens.verify(&forged, now()),
            Err(InvalidToken::Forged(_))
        ));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let tokens = JwtTokens::new(config()).unwrap();
        let body = b64(&format!(
            r#"{{"sub":"{}","kind":"user","role":"admin","iat":{},"exp":{},"iss":"ordo","aud":"ordo-api"}}"#,
            uuid::Uuid::from_u128(7),
            now().timestamp(),
            (now() + TimeDelta::minutes(15)).timestamp()
        ));
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"RS256","typ":"JWT"}"#,
            r#"{"alg":"HS512","typ":"JWT"}"#,
        ] {
            let token = format!("{}.{body}.", b64(header));
            assert!(
                matches!(tokens.verify(&token, now()), Err(InvalidToken::Forged(_))),
                "{header}"
            );
        }
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(
            JwtTokens::new(JwtConfig {
                secret: b"short".to_vec(),
                ..config()
            })
            .is_err()
        );
    }

    #[test]
    fn a_client_token_round_trips_without_a_role() {
        let tokens = JwtTokens::new(config()).unwrap();
        let claims = AccessClaims {
            principal: Principal::Client {
                id: uuid::Uuid::from_u128(9),
            },
            ..staff_claims()
        };
        let token = tokens.issue(&claims).unwrap();
        assert_eq!(tokens.verify(&token, now()).unwrap(), claims);
    }
}
