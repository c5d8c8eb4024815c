//! The scenarios: who holds what, and how prices move.

use std::fmt;
use std::str::FromStr;

/// A stress scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// Every market falls 40% over 10 blocks and stays there.
    Crash40,
    /// A 30% drop in two blocks, recovered over the next three.
    FlashCrash,
    /// One account holds a third of the open interest, split over three
    /// venues (each sees a third of it); the market falls 15%.
    Whale,
    /// The Mango 2022 pattern: a thin market is pumped 5x, the holder of a
    /// large long withdraws against its paper profit, and the price dumps.
    ThinPump,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 4] = [
        Scenario::Crash40,
        Scenario::FlashCrash,
        Scenario::Whale,
        Scenario::ThinPump,
    ];

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Crash40 => "crash-40",
            Scenario::FlashCrash => "flash-crash",
            Scenario::Whale => "whale",
            Scenario::ThinPump => "thin-pump",
        }
    }

    /// One line on what it plays.
    pub fn description(self) -> &'static str {
        match self {
            Scenario::Crash40 => "every market falls 40% in 10 blocks and stays down",
            Scenario::FlashCrash => "a 30% drop in 2 blocks, recovered over the next 3",
            Scenario::Whale => "a whale with a third of the open interest, split over three venues; a 15% fall",
            Scenario::ThinPump => "a thin market pumped 5x; its large holder withdraws against paper profit; the price dumps",
        }
    }

    /// Blocks simulated after the set-up.
    pub fn blocks(self) -> u32 {
        match self {
            Scenario::Crash40 => 30,
            Scenario::FlashCrash => 20,
            Scenario::Whale => 30,
            Scenario::ThinPump => 25,
        }
    }

    /// The price of a market at a block, in per-mille of its start price.
    pub fn price_permille(self, market: &str, block: u32) -> i64 {
        let b = i64::from(block);
        match self {
            Scenario::Crash40 => 1000 - 40 * b.min(10),
            Scenario::FlashCrash => match block {
                0 | 1 => 1000,
                2 => 850,
                3 => 700,
                4 => 800,
                5 => 900,
                _ => 1000,
            },
            Scenario::Whale if market == "BTC-PERP" => 1000 - 10 * b.min(15),
            Scenario::Whale => 1000,
            Scenario::ThinPump if market == "THIN-PERP" => match block {
                0..=1 => 1000,
                2..=6 => 1000 + 800 * (b - 1),
                7..=9 => 5000,
                10..=14 => 5000 - 800 * (b - 9),
                _ => 1000,
            },
            Scenario::ThinPump => 1000,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!("unknown scenario {text:?}; one of {}", names.join(", "))
            })
    }
}
