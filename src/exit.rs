//! How a command ended, and the one place its exit code is decided (README, "Exit codes").
//! Commands return an [`Exit`]; `main` turns it into the process's code.

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: done, and nothing needs attention.
    Ok,
    /// 1: done, and something needs attention: changes pending (`plan --exit-code`, `fleet
    /// --exit-code`), `status` out of sync, `doctor` with a warning or an error finding.
    Attention,
    /// 2: an error (nothing was written, or what was written was put back), or a run over
    /// many snapshots where some could not be read or planned.
    Failed,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Attention => 1,
            Exit::Failed => 2,
        }
    }

    /// [`Exit::Attention`] when `needs` is true, else [`Exit::Ok`].
    pub fn attention_if(needs: bool) -> Exit {
        if needs { Exit::Attention } else { Exit::Ok }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_are_the_documented_ones() {
        assert_eq!(
            [Exit::Ok, Exit::Attention, Exit::Failed].map(Exit::code),
            [0, 1, 2]
        );
        assert_eq!(Exit::attention_if(true), Exit::Attention);
        assert_eq!(Exit::attention_if(false), Exit::Ok);
    }
}
