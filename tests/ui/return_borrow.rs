use idem::idempotent;

struct Service {
    name: String,
}

impl Service {
    #[idempotent(key = id)]
    async fn name(&self, id: u64) -> &str {
        let _ = id;
        &self.name
    }

    #[idempotent(key = id)]
    async fn label<'a>(&'a self, id: u64) -> std::borrow::Cow<'a, str> {
        let _ = id;
        std::borrow::Cow::Borrowed(&self.name)
    }
}

fn main() {}
