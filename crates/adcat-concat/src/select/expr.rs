//! The row-filter language of `--obs-filter` / `--var-filter`: comparisons of columns
//! with literals, `in [...]`, `and` / `or` / `not` and parentheses.
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" expr ")" | column op literal | column ["not"] "in" list
//! op      := "==" | "!=" | "<" | "<=" | ">" | ">="
//! list    := "[" literal ("," literal)* [","] "]"
//! column  := NAME | `any name in backquotes`
//! literal := number | 'text' | "text" | true | false
//! ```
//! NAME is a letter or `_` followed by letters, digits, `_` and `.`; keywords are
//! matched case-sensitively, as Python's.

use std::fmt;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        })
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// A number (integers are exact up to 2^53).
    Num(f64),
    /// A string.
    Str(String),
    /// `true` / `false`.
    Bool(bool),
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Num(x) => write!(f, "{x}"),
            Lit::Str(s) => write!(f, "{s:?}"),
            Lit::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `column op literal`; `pos` is where the column name starts (1-based).
    Cmp { column: String, op: Op, lit: Lit, pos: usize },
    /// `column in [..]` (`negated`: `not in`).
    In { column: String, lits: Vec<Lit>, negated: bool, pos: usize },
    /// `a and b`
    And(Box<Expr>, Box<Expr>),
    /// `a or b`
    Or(Box<Expr>, Box<Expr>),
    /// `not a`
    Not(Box<Expr>),
}

impl Expr {
    /// Every column the filter reads, first use first.
    pub fn columns(&self) -> Vec<String> {
        let mut out = vec![];
        self.walk(&mut |c| {
            if !out.iter().any(|x| x == c) {
                out.push(c.to_owned());
            }
        });
        out
    }

    fn walk(&self, f: &mut impl FnMut(&str)) {
        match self {
            Expr::Cmp { column, .. } | Expr::In { column, .. } => f(column),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Not(a) => a.walk(f),
        }
    }
}

/// A filter that does not parse: where (1-based character position) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {pos}: {msg}")]
pub struct ParseError {
    /// 1-based character position in the expression.
    pub pos: usize,
    /// What was expected or found.
    pub msg: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Quoted(String),
    Str(String),
    Num(f64),
    Op(Op),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

fn err<T>(pos: usize, msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { pos, msg: msg.into() })
}

/// Split `text` into tokens with their 1-based character positions.
fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op = match two.as_str() {
            "==" => Some((Op::Eq, 2)),
            "!=" => Some((Op::Ne, 2)),
            "<=" => Some((Op::Le, 2)),
            ">=" => Some((Op::Ge, 2)),
            _ if c == '<' => Some((Op::Lt, 1)),
            _ if c == '>' => Some((Op::Gt, 1)),
            _ => None,
        };
        if let Some((op, n)) = op {
            out.push((Tok::Op(op), pos));
            i += n;
            continue;
        }
        let simple = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(t) = simple {
            out.push((t, pos));
            i += 1;
        } else if c == '\'' || c == '"' || c == '`' {
            let (s, next) = quoted(&chars, i)?;
            out.push((if c == '`' { Tok::Quoted(s) } else { Tok::Str(s) }, pos));
            i = next;
        } else if c.is_ascii_digit() || ((c == '-' || c == '+' || c == '.') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit() || *d == '.')) {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E'))) {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let v = s.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| ParseError { pos, msg: format!("{s:?} is not a number") })?;
            out.push((Tok::Num(v), pos));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
            out.push((Tok::Name(chars[start..i].iter().collect()), pos));
        } else if c == '=' {
            return err(pos, "`=` is not a comparison; use `==`");
        } else {
            return err(pos, format!("unexpected character {c:?}"));
        }
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

/// A quoted string starting at `chars[i]`; backslash escapes the quote and itself.
fn quoted(chars: &[char], i: usize) -> Result<(String, usize), ParseError> {
    let q = chars[i];
    let mut s = String::new();
    let mut j = i + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' if j + 1 < chars.len() && (chars[j + 1] == q || chars[j + 1] == '\\') => {
                s.push(chars[j + 1]);
                j += 2;
            }
            c if c == q => return Ok((s, j + 1)),
            c => {
                s.push(c);
                j += 1;
            }
        }
    }
    err(i + 1, format!("the quote {q} is not closed"))
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].0
    }

    fn pos(&self) -> usize {
        self.toks[self.at].1
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Tok::Name(n) if n == k)
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.and()?;
        while self.keyword("or") {
            self.next();
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.unary()?;
        while self.keyword("and") {
            self.next();
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.keyword("not") {
            self.next();
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if *self.peek() == Tok::LParen {
            self.next();
            let e = self.expr()?;
            let (t, pos) = self.next();
            if t != Tok::RParen {
                return err(pos, format!("expected `)`, found {}", describe(&t)));
            }
            return Ok(e);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let (t, pos) = self.next();
        let column = match t {
            Tok::Name(n) if !matches!(n.as_str(), "and" | "or" | "not" | "in" | "true" | "false") => n,
            Tok::Quoted(n) => n,
            other => return err(pos, format!("expected a column name, found {}", describe(&other))),
        };
        let negated = self.keyword("not");
        if negated {
            self.next();
            if !self.keyword("in") {
                return err(self.pos(), "expected `in` after `not`");
            }
        }
        if self.keyword("in") {
            self.next();
            return Ok(Expr::In { column, lits: self.list()?, negated, pos });
        }
        let (t, op_pos) = self.next();
        let Tok::Op(op) = t else {
            return err(op_pos, format!("expected a comparison (== != < <= > >=) or `in` after `{column}`, found {}", describe(&t)));
        };
        Ok(Expr::Cmp { column, op, lit: self.literal()?, pos })
    }

    fn list(&mut self) -> Result<Vec<Lit>, ParseError> {
        let (t, pos) = self.next();
        if t != Tok::LBracket {
            return err(pos, format!("expected `[` after `in`, found {}", describe(&t)));
        }
        let mut lits = vec![];
        loop {
            if *self.peek() == Tok::RBracket && !lits.is_empty() {
                self.next();
                return Ok(lits);
            }
            lits.push(self.literal()?);
            let (t, pos) = self.next();
            match t {
                Tok::Comma => {}
                Tok::RBracket => return Ok(lits),
                other => return err(pos, format!("expected `,` or `]` in the list, found {}", describe(&other))),
            }
        }
    }

    fn literal(&mut self) -> Result<Lit, ParseError> {
        let (t, pos) = self.next();
        Ok(match t {
            Tok::Num(x) => Lit::Num(x),
            Tok::Str(s) => Lit::Str(s),
            Tok::Name(n) if n == "true" || n == "True" => Lit::Bool(true),
            Tok::Name(n) if n == "false" || n == "False" => Lit::Bool(false),
            Tok::Name(n) => return err(pos, format!("expected a value, found the name `{n}` (quote text: '{n}')")),
            other => return err(pos, format!("expected a value (number, 'text', true, false), found {}", describe(&other))),
        })
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Name(n) => format!("`{n}`"),
        Tok::Quoted(n) => format!("`{n}`"),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Num(x) => format!("{x}"),
        Tok::Op(o) => format!("`{o}`"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::End => "the end".into(),
    }
}

/// Parse a filter expression.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser { toks: lex(text)?, at: 0 };
    if *p.peek() == Tok::End {
        return err(1, "the filter is empty");
    }
    let e = p.expr()?;
    let (t, pos) = p.next();
    if t != Tok::End {
        return err(pos, format!("expected `and`, `or` or the end, found {}", describe(&t)));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(column: &str, op: Op, lit: Lit, pos: usize) -> Expr {
        Expr::Cmp { column: column.into(), op, lit, pos }
    }

    #[test]
    fn precedence_and_literals() {
        let e = parse("n_genes >= 200 and not (pct_mito > 5.5e0 or `cell type` in ['B', \"T\",]) or doublet == false").unwrap();
        let inner = Expr::Or(
            Box::new(cmp("pct_mito", Op::Gt, Lit::Num(5.5), 25)),
            Box::new(Expr::In { column: "cell type".into(), lits: vec![Lit::Str("B".into()), Lit::Str("T".into())], negated: false, pos: 45 }),
        );
        let left = Expr::And(Box::new(cmp("n_genes", Op::Ge, Lit::Num(200.0), 1)), Box::new(Expr::Not(Box::new(inner))));
        assert_eq!(e, Expr::Or(Box::new(left), Box::new(cmp("doublet", Op::Eq, Lit::Bool(false), 76))));
        assert_eq!(e.columns(), ["n_genes", "pct_mito", "cell type", "doublet"]);
        assert_eq!(parse("x not in [-1, 2]").unwrap(), Expr::In { column: "x".into(), lits: vec![Lit::Num(-1.0), Lit::Num(2.0)], negated: true, pos: 1 });
        assert_eq!(parse("s == 'it\\'s'").unwrap(), cmp("s", Op::Eq, Lit::Str("it's".into()), 1));
    }

    #[test]
    fn errors_say_where() {
        let e = |s: &str| parse(s).unwrap_err().to_string();
        assert_eq!(e("n_genes = 3"), "at position 9: `=` is not a comparison; use `==`");
        assert_eq!(e("n_genes >"), "at position 10: expected a value (number, 'text', true, false), found the end");
        assert_eq!(e("(a == 1"), "at position 8: expected `)`, found the end");
        assert_eq!(e("a == 1 b == 2"), "at position 8: expected `and`, `or` or the end, found `b`");
        assert_eq!(e("a == B"), "at position 6: expected a value, found the name `B` (quote text: 'B')");
        assert_eq!(e("a in 'x'"), "at position 6: expected `[` after `in`, found \"x\"");
        assert_eq!(e("a == 'x"), "at position 6: the quote ' is not closed");
        assert_eq!(e(""), "at position 1: the filter is empty");
        assert_eq!(e("and == 1"), "at position 1: expected a column name, found `and`");
        assert_eq!(e("a == 1e999"), "at position 6: \"1e999\" is not a number");
    }
}
