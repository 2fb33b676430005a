//! A function's signature as WIT text, with the definitions of the named types it uses:
//! what `funcs.describe` shows. Works on a `wit_parser` world: a component's, decoded from its
//! bytes, or the one of a core module's `wit` field.

use wit_parser::{Handle, Resolve, Type, TypeDefKind, TypeId, WorldId, WorldItem, WorldKey};

/// The WIT of the world-level or interface function `export` (`func`, `iface#func`, or the
/// bound name `ns:pkg/iface@1.0.0#func`) of `world`; `None` when it exports no such function.
pub fn function(resolve: &Resolve, world: WorldId, export: &str) -> Option<String> {
    let (iface, name) = match export.split_once('#') {
        Some((iface, name)) => (Some(iface), name),
        None => (None, export),
    };
    let func = resolve.worlds[world]
        .exports
        .iter()
        .find_map(|(key, item)| match (item, iface) {
            (WorldItem::Function(f), None) if f.name == name => Some(f),
            (WorldItem::Interface { id, .. }, Some(iface)) => {
                let full = resolve.id_of(*id);
                let plain = match key {
                    WorldKey::Name(n) => Some(n.as_str()),
                    WorldKey::Interface(_) => resolve.interfaces[*id].name.as_deref(),
                };
                let unversioned = full.as_deref().and_then(|f| f.split('@').next());
                let named = full.as_deref() == Some(iface)
                    || unversioned == Some(iface)
                    || plain == Some(iface);
                named
                    .then(|| resolve.interfaces[*id].functions.get(name))
                    .flatten()
            }
            _ => None,
        })?;
    let mut printer = Printer {
        resolve,
        named: Vec::new(),
    };
    let params: Vec<String> = func
        .params
        .iter()
        .map(|p| format!("{}: {}", ident(&p.name), printer.ty(&p.ty)))
        .collect();
    let mut out = format!("{}: func({})", ident(&func.name), params.join(", "));
    if let Some(result) = &func.result {
        out += &format!(" -> {}", printer.ty(result));
    }
    out += ";\n";
    // Definitions may name more types: they are appended while this runs.
    let mut i = 0;
    while let Some(&id) = printer.named.get(i) {
        out += "\n";
        out += &printer.definition(id);
        i += 1;
    }
    Some(out)
}

/// The resources `world` exports (in its exported interfaces, or at its top level), each as
/// `(name, interface, WIT)`: `resource counter { constructor(...); get: func() -> s64; ... }`,
/// with the named types its functions use after it.
pub fn resources(resolve: &Resolve, world: WorldId) -> Vec<(String, Option<String>, String)> {
    let mut out = Vec::new();
    for (key, item) in &resolve.worlds[world].exports {
        let WorldItem::Interface { id, .. } = item else {
            continue;
        };
        let iface = &resolve.interfaces[*id];
        let iface_name = resolve.id_of(*id).or_else(|| match key {
            WorldKey::Name(n) => Some(n.clone()),
            WorldKey::Interface(_) => None,
        });
        for (name, ty) in &iface.types {
            if !matches!(resolve.types[*ty].kind, TypeDefKind::Resource) {
                continue;
            }
            let mut printer = Printer {
                resolve,
                named: vec![*ty],
            };
            let mut body = Vec::new();
            for func in iface.functions.values() {
                use wit_parser::FunctionKind as K;
                let (of, kind) = match &func.kind {
                    K::Constructor(of) => (of, "constructor"),
                    K::Method(of) | K::AsyncMethod(of) => (of, "method"),
                    K::Static(of) | K::AsyncStatic(of) => (of, "static"),
                    _ => continue,
                };
                if of != ty {
                    continue;
                }
                let params: Vec<String> = func
                    .params
                    .iter()
                    .skip(usize::from(kind == "method"))
                    .map(|p| format!("{}: {}", ident(&p.name), printer.ty(&p.ty)))
                    .collect();
                let short = func.name.rsplit('.').next().unwrap_or(&func.name);
                let line = match kind {
                    "constructor" => format!("  constructor({});", params.join(", ")),
                    _ => {
                        let result = match &func.result {
                            Some(r) => format!(" -> {}", printer.ty(r)),
                            None => String::new(),
                        };
                        let stat = if kind == "static" { "static " } else { "" };
                        format!(
                            "  {}: {stat}func({}){result};",
                            ident(short),
                            params.join(", ")
                        )
                    }
                };
                body.push(line);
            }
            let mut text = format!("resource {} {{\n{}\n}}\n", ident(name), body.join("\n"));
            // The other named types its functions use (the resource itself is first).
            let mut i = 1;
            while let Some(&id) = printer.named.get(i) {
                text += "\n";
                text += &printer.definition(id);
                i += 1;
            }
            out.push((name.clone(), iface_name.clone(), text));
        }
    }
    out
}

/// A component's world as WIT, decoded from its bytes.
///
/// # Errors
/// What the decoder says of bytes that are not a component.
pub fn component_world(bytes: &[u8]) -> Result<(Resolve, WorldId), String> {
    match wit_parser::decoding::decode(bytes).map_err(|e| format!("{e:#}"))? {
        wit_parser::decoding::DecodedWasm::Component(resolve, world) => Ok((resolve, world)),
        wit_parser::decoding::DecodedWasm::WitPackage(..) => {
            Err("a WIT package, not a component".into())
        }
    }
}

/// A WIT identifier as WIT writes it: `%` before a keyword (`%type`).
fn ident(name: &str) -> String {
    const KEYWORDS: [&str; 42] = [
        "as",
        "bool",
        "borrow",
        "char",
        "constructor",
        "enum",
        "error-context",
        "export",
        "f32",
        "f64",
        "flags",
        "from",
        "func",
        "future",
        "import",
        "include",
        "interface",
        "list",
        "option",
        "own",
        "package",
        "record",
        "resource",
        "result",
        "s16",
        "s32",
        "s64",
        "s8",
        "static",
        "stream",
        "string",
        "tuple",
        "type",
        "u16",
        "u32",
        "u64",
        "u8",
        "use",
        "variant",
        "with",
        "world",
        "async",
    ];
    if KEYWORDS.contains(&name) {
        format!("%{name}")
    } else {
        name.to_string()
    }
}

struct Printer<'a> {
    resolve: &'a Resolve,
    /// Named types met so far, in order, each once.
    named: Vec<TypeId>,
}

impl Printer<'_> {
    fn ty(&mut self, ty: &Type) -> String {
        let name = match ty {
            Type::Bool => "bool",
            Type::U8 => "u8",
            Type::U16 => "u16",
            Type::U32 => "u32",
            Type::U64 => "u64",
            Type::S8 => "s8",
            Type::S16 => "s16",
            Type::S32 => "s32",
            Type::S64 => "s64",
            Type::F32 => "f32",
            Type::F64 => "f64",
            Type::Char => "char",
            Type::String => "string",
            Type::ErrorContext => "error-context",
            Type::Id(id) => return self.id(*id),
        };
        name.to_string()
    }

    fn id(&mut self, mut id: TypeId) -> String {
        // A decoded component's exported interface re-exports its types under the same name
        // (`type user = user`): the definition is the one behind.
        let resolve = self.resolve;
        while let TypeDefKind::Type(Type::Id(inner)) = &resolve.types[id].kind
            && resolve.types[*inner].name.is_some()
            && resolve.types[*inner].name == resolve.types[id].name
        {
            id = *inner;
        }
        let def = &self.resolve.types[id];
        if let Some(name) = &def.name {
            if !self.named.contains(&id) {
                self.named.push(id);
            }
            return ident(name);
        }
        self.kind(&def.kind)
    }

    /// The structure of a type that WIT writes inline (`list<...>`, `option<...>`, ...).
    fn kind(&mut self, kind: &TypeDefKind) -> String {
        match kind {
            TypeDefKind::List(t) => format!("list<{}>", self.ty(t)),
            TypeDefKind::FixedLengthList(t, n) => format!("list<{}, {n}>", self.ty(t)),
            TypeDefKind::Map(k, v) => format!("map<{}, {}>", self.ty(k), self.ty(v)),
            TypeDefKind::Option(t) => format!("option<{}>", self.ty(t)),
            TypeDefKind::Result(r) => match (&r.ok, &r.err) {
                (None, None) => "result".into(),
                (Some(ok), None) => format!("result<{}>", self.ty(ok)),
                (None, Some(err)) => format!("result<_, {}>", self.ty(err)),
                (Some(ok), Some(err)) => format!("result<{}, {}>", self.ty(ok), self.ty(err)),
            },
            TypeDefKind::Tuple(t) => {
                let items: Vec<String> = t.types.iter().map(|t| self.ty(t)).collect();
                format!("tuple<{}>", items.join(", "))
            }
            TypeDefKind::Handle(Handle::Own(r)) => self.id(*r),
            TypeDefKind::Handle(Handle::Borrow(r)) => format!("borrow<{}>", self.id(*r)),
            TypeDefKind::Future(t) => match t {
                Some(t) => format!("future<{}>", self.ty(t)),
                None => "future".into(),
            },
            TypeDefKind::Stream(t) => match t {
                Some(t) => format!("stream<{}>", self.ty(t)),
                None => "stream".into(),
            },
            TypeDefKind::Type(t) => self.ty(t),
            // Anonymous records, variants and the like do not occur in WIT.
            _ => "unknown".into(),
        }
    }

    /// `record user { id: u32, ... }` and the like, for a named type.
    fn definition(&mut self, id: TypeId) -> String {
        let resolve = self.resolve;
        let def = &resolve.types[id];
        let name = ident(def.name.as_deref().unwrap_or_default());
        let body = |items: Vec<String>| {
            if items.is_empty() {
                "{}".to_string()
            } else {
                format!("{{\n{}\n}}", items.join(",\n"))
            }
        };
        match &def.kind {
            TypeDefKind::Record(r) => {
                let fields = r
                    .fields
                    .iter()
                    .map(|f| format!("  {}: {}", ident(&f.name), self.ty(&f.ty)))
                    .collect();
                format!("record {name} {}\n", body(fields))
            }
            TypeDefKind::Variant(v) => {
                let cases = v
                    .cases
                    .iter()
                    .map(|c| match &c.ty {
                        Some(t) => format!("  {}({})", ident(&c.name), self.ty(t)),
                        None => format!("  {}", ident(&c.name)),
                    })
                    .collect();
                format!("variant {name} {}\n", body(cases))
            }
            TypeDefKind::Enum(e) => {
                let cases = e
                    .cases
                    .iter()
                    .map(|c| format!("  {}", ident(&c.name)))
                    .collect();
                format!("enum {name} {}\n", body(cases))
            }
            TypeDefKind::Flags(f) => {
                let flags = f
                    .flags
                    .iter()
                    .map(|c| format!("  {}", ident(&c.name)))
                    .collect();
                format!("flags {name} {}\n", body(flags))
            }
            TypeDefKind::Resource => format!("resource {name};\n"),
            TypeDefKind::Type(t) => format!("type {name} = {};\n", self.ty(t)),
            // A named list, option, tuple...: its structure under its name.
            kind => format!("type {name} = {};\n", self.kind(kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(text: &str) -> (Resolve, WorldId) {
        let mut resolve = Resolve::default();
        let pkg = resolve.push_str("t.wit", text).unwrap();
        let world = resolve.select_world(&[pkg], None).unwrap();
        (resolve, world)
    }

    #[test]
    fn a_function_with_the_named_types_it_uses() {
        let (resolve, w) = world(
            "package t:m@1.0.0;
             interface users {
               record user-record { id: u32, name: string, tags: list<string> }
               record user-output { display: string, kind: kind, %type: u8 }
               enum kind { admin, guest }
               transform-users: func(users: list<user-record>) -> list<user-output>;
             }
             world w { export users; export ping: func(n: option<s32>) -> result<u8, string>; }",
        );
        let text = function(&resolve, w, "t:m/users@1.0.0#transform-users").unwrap();
        assert_eq!(
            text,
            "transform-users: func(users: list<user-record>) -> list<user-output>;\n\n\
             record user-record {\n  id: u32,\n  name: string,\n  tags: list<string>\n}\n\n\
             record user-output {\n  display: string,\n  kind: kind,\n  %type: u8\n}\n\n\
             enum kind {\n  admin,\n  guest\n}\n"
        );
        assert_eq!(function(&resolve, w, "users#transform-users"), Some(text));
        assert_eq!(
            function(&resolve, w, "ping").unwrap(),
            "ping: func(n: option<s32>) -> result<u8, string>;\n"
        );
        assert_eq!(function(&resolve, w, "nope"), None);
    }
}
