use std::rc::Rc;

use idem::idempotent;

#[idempotent(key = id)]
async fn load(id: u64) -> Result<Rc<String>, String> {
    Ok(Rc::new(id.to_string()))
}

fn main() {}
