//! One-time tokens on Redis: `SET … PX … NX` to issue, `GETDEL` to spend.

use std::time::Duration;

use idem::store::{StoreError, Token, TokenStore};
use redis::aio::ConnectionLike;

use crate::store::RedisStore;

/// A token's Redis key: `<prefix>:tok:<scope>:<token>`, the scope with its
/// `%` and `:` percent-encoded so that (scope, token) pairs never share a
/// key. Naming the scope in the key is what makes a consume in another
/// scope miss without spending the token: `GETDEL` on the wrong key
/// finds nothing.
fn token_key(prefix: &str, scope: &str, token: &Token) -> String {
    let mut s = String::with_capacity(prefix.len() + scope.len() + 30);
    s.push_str(prefix);
    s.push_str(":tok:");
    for c in scope.chars() {
        match c {
            '%' => s.push_str("%25"),
            ':' => s.push_str("%3A"),
            c => s.push(c),
        }
    }
    s.push(':');
    s.push_str(token.as_str());
    s
}

/// Tokens are single keys: any slot of a cluster, no script.
impl<C> TokenStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn issue(&self, scope: &str, ttl: Duration) -> Result<Token, StoreError> {
        let token = Token::generate();
        let key = token_key(self.key_prefix(), scope, &token);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.connection();
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("PX")
            .arg(ms)
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        match set {
            Some(_) => Ok(token),
            // 128 random bits collided with a live token: never seen, and
            // not to be handed out twice.
            None => Err(StoreError::Unavailable(
                "a freshly generated token already exists; retry".into(),
            )),
        }
    }

    async fn consume(&self, scope: &str, token: &Token) -> Result<bool, StoreError> {
        let key = token_key(self.key_prefix(), scope, token);
        let mut conn = self.connection();
        let spent: Option<String> = redis::cmd("GETDEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(spent.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_encoded_so_that_keys_never_collide() {
        let t = Token::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(
            token_key("idem", "form:a", &t),
            "idem:tok:form%3Aa:AAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_ne!(token_key("idem", "a:b", &t), token_key("idem", "a%3Ab", &t));
    }
}
