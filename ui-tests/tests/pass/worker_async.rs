use concurry::prelude::*;

pub struct Fetcher {
    hits: u32,
}

#[concurry::worker(mode = "async", max_workers = 2)]
impl Fetcher {
    pub fn new() -> Self {
        Fetcher { hits: 0 }
    }

    pub async fn fetch(&self, url: String) -> String {
        format!("<{url}>")
    }

    pub async fn hit(&mut self) -> u32 {
        self.hits += 1;
        self.hits
    }

    pub async fn check(&self, ok: bool) -> Result<(), std::io::Error> {
        if ok {
            Ok(())
        } else {
            Err(std::io::Error::other("bad"))
        }
    }

    pub async fn nothing(&mut self) -> () {}
}

#[tokio::main]
async fn main() {
    let f = Fetcher::options().init().unwrap();
    assert_eq!(f.fetch("a").await.unwrap(), "<a>");
    let _: Promise<u32> = f.hit();
    let _: Promise<(), std::io::Error> = f.check(true);
    assert!(matches!(f.check(false).await, Err(Error::Method(_))));
    f.nothing().await.unwrap();
    f.stop().unwrap();
}
