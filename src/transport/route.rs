//! Routes of a running service: an endpoint's path as segments (literal, `{param}`,
//! `{rest...}`), matching a request path, and the order in which routes are tried.

use hyper::Method;

/// A route of a running service.
#[derive(Debug, Clone)]
pub(super) struct Route {
    pub(super) method: Method,
    segments: Vec<Segment>,
    pub(super) func: String,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

impl Route {
    /// The route of `method` on `path` (prefix included) to the function `func`.
    pub(super) fn new(method: &Method, path: &str, func: &str) -> Route {
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(p) if p.ends_with("...") => Segment::Rest,
                    Some(_) => Segment::Param,
                    None => Segment::Literal(s.to_string()),
                },
            )
            .collect();
        Route {
            method: method.clone(),
            segments,
            func: func.to_string(),
        }
    }

    /// Sorts routes most specific first: literal segments before parameters before a rest,
    /// segment by segment, then longer paths first.
    pub(super) fn precedence(&self) -> (Vec<u8>, std::cmp::Reverse<usize>) {
        let ranks = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 0,
                Segment::Param => 1,
                Segment::Rest => 2,
            })
            .collect();
        (ranks, std::cmp::Reverse(self.segments.len()))
    }

    pub(super) fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut i = 0;
        for seg in &self.segments {
            match seg {
                Segment::Rest => return true,
                Segment::Param if i < parts.len() => i += 1,
                Segment::Literal(l) if parts.get(i) == Some(&l.as_str()) => i += 1,
                _ => return false,
            }
        }
        i == parts.len()
    }
}
