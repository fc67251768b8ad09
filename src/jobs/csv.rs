//! The bulk CSV: header `CN,SAN`, one row per device, at most 500 rows. Accepts UTF-8 with
//! or without a BOM, CRLF or LF line ends, and a spreadsheet's quoting (RFC 4180). The
//! messages are the portal FAQ's, word for word.

/// The FAQ's limit on rows in one bulk request.
pub const MAX_ROWS: usize = 500;
/// The FAQ's message for too many rows.
pub const MSG_TOO_MANY: &str =
    "There are more than the maximum allowed entries in this CSV. Maximum is 500";
/// The FAQ's message for a row without exactly a CN and a SAN.
pub const MSG_COLUMNS: &str =
    "There are either missing or extra columns in the CSV file. Please stick to the template";
/// What "Download CSV template here" gives.
pub const TEMPLATE: &str = "CN,SAN\r\n";

/// One device: the line of the CSV its record starts on (the header is line 1; blank lines
/// and line breaks inside quotes count) and its two values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub number: usize,
    pub cn: String,
    pub san: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    #[error("{MSG_TOO_MANY}")]
    TooMany,
    #[error("{MSG_COLUMNS}")]
    Columns { row: usize },
    #[error("The CSV file is not UTF-8 text")]
    NotUtf8,
    #[error("The CSV file has no rows")]
    Empty,
    #[error("The CSV file has a quote that is never closed (row {row})")]
    Quote { row: usize },
}

/// Splits CSV text into records of fields (RFC 4180 quoting; `""` inside quotes is `"`),
/// each with the line it starts on (1-based: blank lines and line breaks inside quotes
/// count, as in a text editor).
fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let mut out = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut line = 1;
    let mut start = 1; // the line the current record began on
    let mut any = false; // the record has content (to skip blank lines)
    while let Some(c) = chars.next() {
        if !any && field.is_empty() && record.is_empty() {
            start = line;
        }
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                '\r' if chars.peek() == Some(&'\n') => field.push(c),
                '\r' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                any = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                if any || !field.is_empty() {
                    record.push(std::mem::take(&mut field));
                    out.push((start, std::mem::take(&mut record)));
                }
                field.clear();
                any = false;
                line += 1;
            }
            _ => {
                field.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err(CsvError::Quote { row: start });
    }
    if any || !field.is_empty() {
        record.push(field);
        out.push((start, record));
    }
    Ok(out)
}

/// Reads a bulk CSV: an optional `CN,SAN` header, then rows of exactly two non-empty values.
pub fn parse(bytes: &[u8]) -> Result<Vec<Row>, CsvError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| CsvError::NotUtf8)?;
    let mut recs = records(text)?;
    let header = recs.first().is_some_and(|(_, r)| {
        r.len() == 2
            && r[0].trim().eq_ignore_ascii_case("CN")
            && r[1].trim().eq_ignore_ascii_case("SAN")
    });
    if header {
        recs.remove(0);
    }
    if recs.len() > MAX_ROWS {
        return Err(CsvError::TooMany);
    }
    if recs.is_empty() {
        return Err(CsvError::Empty);
    }
    recs.into_iter()
        .map(|(number, r)| match r.as_slice() {
            [cn, san] if !cn.trim().is_empty() && !san.trim().is_empty() => Ok(Row {
                number,
                cn: cn.trim().to_string(),
                san: san.trim().to_string(),
            }),
            _ => Err(CsvError::Columns { row: number }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(number: usize, cn: &str, san: &str) -> Row {
        Row {
            number,
            cn: cn.into(),
            san: san.into(),
        }
    }

    #[test]
    fn header_bom_line_ends_and_quoting() {
        let want = vec![
            row(2, "Joe", "11-22-33-44-55-66"),
            row(3, "O'Brien, Pat", "0011.2233.4455"),
        ];
        for text in [
            "CN,SAN\nJoe,11-22-33-44-55-66\n\"O'Brien, Pat\",0011.2233.4455\n",
            "CN,SAN\r\nJoe,11-22-33-44-55-66\r\n\"O'Brien, Pat\",\"0011.2233.4455\"\r\n",
            "\u{feff}cn,san\r\nJoe,11-22-33-44-55-66\r\n\"O'Brien, Pat\",0011.2233.4455",
        ] {
            assert_eq!(parse(text.as_bytes()).unwrap(), want, "{text:?}");
        }
        // blank lines and a line break inside quotes: each row by the line it starts on
        assert_eq!(
            parse("CN,SAN\n\nJoe , 11-22-33-44-55-66\n\n\"O'Brien,\nPat\",0011.2233.4455\nAnn,00-11-22-33-44-55\n\n".as_bytes())
                .unwrap(),
            vec![
                row(3, "Joe", "11-22-33-44-55-66"),
                row(5, "O'Brien,\nPat", "0011.2233.4455"),
                row(7, "Ann", "00-11-22-33-44-55"),
            ]
        );
        assert_eq!(
            parse(b"CN,SAN\r\n\r\nJoe\r\n"),
            Err(CsvError::Columns { row: 3 }),
            "the bad row named by its line, CRLF too"
        );
        assert_eq!(
            parse(b"Joe,11-22-33-44-55-66").unwrap(),
            vec![row(1, "Joe", "11-22-33-44-55-66")],
            "no header"
        );
        assert_eq!(
            parse("CN,SAN\n\"say \"\"hi\"\"\",x\n".as_bytes()).unwrap()[0].cn,
            "say \"hi\""
        );
    }

    #[test]
    fn the_faq_messages() {
        let many: String = std::iter::once("CN,SAN\n".to_string())
            .chain((0..501).map(|i| format!("dev{i},00-11-22-33-44-{:02X}\n", i % 256)))
            .collect();
        assert_eq!(parse(many.as_bytes()), Err(CsvError::TooMany));
        assert_eq!(
            CsvError::TooMany.to_string(),
            "There are more than the maximum allowed entries in this CSV. Maximum is 500"
        );
        let five_hundred: String = many.lines().take(501).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse(five_hundred.as_bytes()).unwrap().len(), 500);
        for (text, bad_row) in [
            ("CN,SAN\nJoe\n", 2),
            ("CN,SAN\nJoe,11-22-33-44-55-66,extra\n", 2),
            ("CN,SAN\nJoe,11-22-33-44-55-66\nAnn,\n", 3),
            ("CN,SAN\n,11-22-33-44-55-66\n", 2),
            ("CN,SAN\nJoe,11-22-33-44-55-66,\n", 2),
        ] {
            let err = parse(text.as_bytes()).unwrap_err();
            assert_eq!(err, CsvError::Columns { row: bad_row }, "{text:?}");
            assert_eq!(
                err.to_string(),
                "There are either missing or extra columns in the CSV file. Please stick to the template"
            );
        }
        assert_eq!(parse(b"CN,SAN\n"), Err(CsvError::Empty));
        assert_eq!(parse(b"\xff\xfe"), Err(CsvError::NotUtf8));
        assert_eq!(parse(b"CN,SAN\n\"Joe,11"), Err(CsvError::Quote { row: 2 }));
    }
}
