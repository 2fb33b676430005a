//! The `wit` signature of a core module entry: the short line form or a full WIT world.
//!
//! The short form is one line per function, `name: func(a: s32, b: s32) -> s32;`, with
//! `-> (s32, s32)` for several results. It is read as the exports of a one-off world, so both
//! forms end up as a `wit_parser` world. A function with only scalar types is called directly
//! as a core function ([`Signature::scalar`]); anything else needs the canonical ABI, for which
//! the module is wrapped into a component ([`Signature::componentize`]).

use std::collections::HashSet;

use wit_parser::{Resolve, Type, TypeDefKind, WorldId, WorldItem, WorldKey};

use crate::value::CoreType;

/// A parsed `wit` field.
pub struct Signature {
    resolve: Resolve,
    world: WorldId,
    /// Functions whose short form listed several results (`-> (s32, s32)`).
    multi: HashSet<String>,
}

/// A function of scalars only, callable as a core function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalarSig {
    pub params: Vec<(String, CoreType)>,
    pub results: Vec<CoreType>,
}

impl Signature {
    /// Parses a `wit` field.
    ///
    /// # Errors
    /// The WIT parser's message, or a world that cannot be chosen.
    pub fn parse(text: &str) -> Result<Signature, String> {
        let full = text.contains("world ") || text.contains("package ");
        let mut multi = HashSet::new();
        let source = if full {
            text.to_string()
        } else {
            short_form_world(text, &mut multi)?
        };
        let mut resolve = Resolve::default();
        let pkg = resolve
            .push_str("wit", &source)
            .map_err(|e| format!("invalid wit: {e:#}"))?;
        let world = resolve
            .select_world(&[pkg], None)
            .map_err(|e| format!("invalid wit: {e:#}"))?;
        Ok(Signature {
            resolve,
            world,
            multi,
        })
    }

    /// The WIT of function `method` with the named types it uses (see `describe`).
    pub fn describe(&self, method: &str) -> Option<String> {
        crate::describe::function(&self.resolve, self.world, method)
    }

    /// The names of the world's exported functions (`iface#func` for interface exports).
    pub fn exports(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (key, item) in &self.resolve.worlds[self.world].exports {
            match item {
                WorldItem::Function(f) => names.push(f.name.clone()),
                WorldItem::Interface { id, .. } => {
                    let iface = self.resolve.name_world_key(key);
                    for name in self.resolve.interfaces[*id].functions.keys() {
                        names.push(format!("{iface}#{name}"));
                    }
                }
                WorldItem::Type { .. } => {}
            }
        }
        names
    }

    /// The signature of world-level function `method` when all its types are scalars.
    ///
    /// `Ok(None)` when the function exists but needs the canonical ABI.
    ///
    /// # Errors
    /// `method` is not a function exported by the world.
    pub fn scalar(&self, method: &str) -> Result<Option<ScalarSig>, String> {
        let world = &self.resolve.worlds[self.world];
        let func = match world.exports.get(&WorldKey::Name(method.to_string())) {
            Some(WorldItem::Function(f)) => f,
            _ => {
                if self.exports().iter().any(|e| e == method) {
                    return Ok(None);
                }
                return Err(format!(
                    "method `{method}` is not in the wit signature (it has: {})",
                    self.exports().join(", ")
                ));
            }
        };
        let mut params = Vec::new();
        for p in &func.params {
            match self.scalar_type(&p.ty) {
                Some(t) => params.push((p.name.clone(), t)),
                None => return Ok(None),
            }
        }
        let results = match &func.result {
            None => Vec::new(),
            Some(ty) if self.multi.contains(method) => {
                let Some(types) = self.tuple_types(ty) else {
                    return Ok(None);
                };
                match types.iter().map(|t| self.scalar_type(t)).collect() {
                    Some(r) => r,
                    None => return Ok(None),
                }
            }
            Some(ty) => match self.scalar_type(ty) {
                Some(t) => vec![t],
                None => return Ok(None),
            },
        };
        Ok(Some(ScalarSig { params, results }))
    }

    /// Wraps core module `bytes` into a component with this world (canonical ABI, UTF-8).
    ///
    /// # Errors
    /// The module does not fit the world (missing exports, wrong core types, no `memory` or
    /// `cabi_realloc` where strings or lists need them).
    pub fn componentize(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let mut module = bytes.to_vec();
        wit_component::embed_component_metadata(
            &mut module,
            &self.resolve,
            self.world,
            wit_component::StringEncoding::UTF8,
        )
        .map_err(|e| format!("{e:#}"))?;
        wit_component::ComponentEncoder::default()
            .validate(true)
            .module(&module)
            .and_then(|mut encoder| encoder.encode())
            .map_err(|e| format!("the module does not fit its wit signature: {e:#}"))
    }

    fn resolved<'a>(&'a self, mut ty: &'a Type) -> &'a Type {
        while let Type::Id(id) = ty {
            match &self.resolve.types[*id].kind {
                TypeDefKind::Type(inner) => ty = inner,
                _ => break,
            }
        }
        ty
    }

    fn scalar_type(&self, ty: &Type) -> Option<CoreType> {
        Some(match self.resolved(ty) {
            Type::Bool => CoreType::Bool,
            Type::U8 => CoreType::U8,
            Type::U16 => CoreType::U16,
            Type::U32 => CoreType::U32,
            Type::U64 => CoreType::U64,
            Type::S8 => CoreType::S8,
            Type::S16 => CoreType::S16,
            Type::S32 => CoreType::S32,
            Type::S64 => CoreType::S64,
            Type::F32 => CoreType::F32,
            Type::F64 => CoreType::F64,
            Type::Char => CoreType::Char,
            _ => return None,
        })
    }

    fn tuple_types(&self, ty: &Type) -> Option<Vec<Type>> {
        match self.resolved(ty) {
            Type::Id(id) => match &self.resolve.types[*id].kind {
                TypeDefKind::Tuple(t) => Some(t.types.clone()),
                _ => None,
            },
            _ => None,
        }
    }
}

/// `answer: func() -> s32;` lines as a world exporting those functions.
fn short_form_world(text: &str, multi: &mut HashSet<String>) -> Result<String, String> {
    let mut world = String::from("package funcs:signature;\nworld signature {\n");
    for line in text.lines().flat_map(|l| l.split(';')) {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let Some((name, rest)) = line.split_once(':') else {
            return Err(format!(
                "invalid wit: expected `name: func(...) -> type;`, got `{line}`"
            ));
        };
        let name = name.trim();
        let rest = rest.trim();
        let rest = match rest.split_once("->") {
            Some((params, results)) => {
                let results = results.trim();
                match results.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
                    Some(list) => {
                        multi.insert(name.to_string());
                        // Named results (`(a: s32, b: s32)`) keep only their types.
                        let types: Vec<&str> = split_top_level(list)
                            .into_iter()
                            .map(|t| t.rsplit_once(':').map_or(t, |(_, ty)| ty).trim())
                            .collect();
                        format!("{} -> tuple<{}>", params.trim(), types.join(", "))
                    }
                    None => format!("{} -> {results}", params.trim()),
                }
            }
            None => rest.to_string(),
        };
        world.push_str(&format!("  export {name}: {rest};\n"));
    }
    world.push_str("}\n");
    Ok(world)
}

/// Splits at commas outside `<...>`.
fn split_top_level(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in list.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !list[start..].trim().is_empty() {
        parts.push(&list[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_scalars() {
        let sig = Signature::parse("answer: func() -> s32;").unwrap();
        let s = sig.scalar("answer").unwrap().unwrap();
        assert_eq!(s.params, vec![]);
        assert_eq!(s.results, vec![CoreType::S32]);
    }

    #[test]
    fn short_form_several_results() {
        let sig = Signature::parse("divmod: func(a: u32, b: u32) -> (u32, u32);\n").unwrap();
        let s = sig.scalar("divmod").unwrap().unwrap();
        assert_eq!(
            s.params,
            vec![
                ("a".to_string(), CoreType::U32),
                ("b".to_string(), CoreType::U32)
            ]
        );
        assert_eq!(s.results, vec![CoreType::U32, CoreType::U32]);
    }

    #[test]
    fn strings_need_the_canonical_abi() {
        let sig = Signature::parse("len: func(s: string) -> u32;").unwrap();
        assert_eq!(sig.scalar("len").unwrap(), None);
    }

    #[test]
    fn unknown_method_lists_what_there_is() {
        let sig = Signature::parse("a: func();\nb: func();").unwrap();
        let err = sig.scalar("c").unwrap_err();
        assert!(err.contains("a, b"), "{err}");
    }

    #[test]
    fn bad_wit_says_so() {
        let err = Signature::parse("answer: func( -> s32;").err().unwrap();
        assert!(err.starts_with("invalid wit"), "{err}");
    }
}
