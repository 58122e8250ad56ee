//! XML text escaping, the one both front ends use (S3 refusals answered before s3s, Azure's bodies).

/// Text escaped for an XML element or attribute. Characters XML 1.0 cannot carry (controls other
/// than tab, CR, LF) are written as character references, which parsers reject only in strict mode.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push_str(&format!("&#x{:X};", c as u32)),
            c => out.push(c),
        }
    }
    out
}
