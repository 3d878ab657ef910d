//! Aligned plain-text tables, kubectl style.

pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Table {
        Table { rows: vec![header.iter().map(|h| h.to_string()).collect()] }
    }

    pub fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows.push(cells.into());
    }

    /// A table whose columns are chosen at run time (`-o wide`, `--show-labels`).
    pub fn with_header(header: Vec<String>) -> Table {
        Table { rows: vec![header] }
    }

    pub fn push(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Rows below the header.
    pub fn is_empty(&self) -> bool {
        self.rows.len() <= 1
    }

    /// The header and the rows below it (for `get -w`, which prints rows as they change).
    pub fn into_parts(mut self) -> (Vec<String>, Vec<Vec<String>>) {
        let header = self.rows.remove(0);
        (header, self.rows)
    }

    pub fn render(&self) -> String {
        let cols = self.rows[0].len();
        let widths: Vec<usize> = (0..cols)
            .map(|c| self.rows.iter().map(|r| r.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                if c + 1 == cols {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let mut t = super::Table::new(["A", "BB"]);
        t.row(["long".to_string(), "x".to_string()]);
        assert_eq!(t.render(), "A      BB\nlong   x\n");
    }
}
