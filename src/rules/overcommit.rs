//! Rule `overcommit`. See [`DOC`].

use super::{Context, Outcome, Rule};

pub const DOC: &str = "TODO";

pub struct Overcommit;

impl Rule for Overcommit {
    fn id(&self) -> &'static str {
        "overcommit"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "vm.overcommit_memory",
            "vm.overcommit_ratio",
            "vm.overcommit_kbytes",
        ]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, _ctx: &Context) -> Outcome {
        Outcome::default()
    }
}

pub fn commit_limit_bytes(
    mem_total: u64,
    hugetlb: u64,
    swap_total: u64,
    page: u64,
    ratio: i128,
    kbytes: u64,
) -> u64 {
    let _ = (mem_total, hugetlb, swap_total, page, ratio, kbytes);
    0
}
