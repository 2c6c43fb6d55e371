//! Splits one Chinese address (K3Cloud's `FReceiveAddress`) into province,
//! city, district and street, in the forms routing uses (`广东省`,
//! `深圳市`, `南山区`). Municipalities are their own city (`上海市上海市`).
//! An address that does not start with a province is left whole in
//! `street` and the order goes to exception for the missing province, so
//! a person sees it rather than a guess.

/// The parts of an address; empty when not found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressParts {
    pub province: String,
    pub city: String,
    pub district: String,
    pub street: String,
}

const MUNICIPALITIES: &[&str] = &["北京市", "上海市", "天津市", "重庆市"];
const REGIONS: &[&str] = &[
    "内蒙古自治区",
    "广西壮族自治区",
    "西藏自治区",
    "宁夏回族自治区",
    "新疆维吾尔自治区",
    "香港特别行政区",
    "澳门特别行政区",
];

/// Splits `addr`; see the module doc.
pub fn split(addr: &str) -> AddressParts {
    let a = addr.trim();
    let mut out = AddressParts::default();
    let rest = if let Some(m) = MUNICIPALITIES.iter().find(|m| a.starts_with(**m)) {
        out.province = m.to_string();
        out.city = m.to_string();
        // Some write the city twice (上海市上海市浦东新区).
        let r = &a[m.len()..];
        r.strip_prefix(*m).unwrap_or(r)
    } else if let Some(r) = REGIONS.iter().find(|r| a.starts_with(**r)) {
        out.province = r.to_string();
        &a[r.len()..]
    } else if let Some(i) = a.find('省') {
        out.province = a[..i + '省'.len_utf8()].to_string();
        &a[i + '省'.len_utf8()..]
    } else {
        out.street = a.to_string();
        return out;
    };
    let rest = if out.city.is_empty() {
        match take_suffix(rest, &["自治州", "地区", "盟", "市"]) {
            Some((city, r)) => {
                out.city = city.to_string();
                r
            }
            None => rest,
        }
    } else {
        rest
    };
    let rest = match take_suffix(rest, &["区", "县", "市", "旗"]) {
        // A "district" longer than 8 characters is more likely a street
        // that happens to contain 区 (工业园区XX路…): keep it as street.
        Some((d, r)) if d.chars().count() <= 8 => {
            out.district = d.to_string();
            r
        }
        _ => rest,
    };
    out.street = rest.trim().to_string();
    out
}

/// The shortest prefix of `s` ending in one of `suffixes` (at least two
/// characters long), and the rest.
fn take_suffix<'a>(s: &'a str, suffixes: &[&str]) -> Option<(&'a str, &'a str)> {
    let mut best: Option<usize> = None;
    for suf in suffixes {
        // Skip the first character so that "市" alone is never a city.
        let start = s.chars().next()?.len_utf8();
        if let Some(i) = s[start..].find(suf) {
            let end = start + i + suf.len();
            best = Some(best.map_or(end, |b| b.min(end)));
        }
    }
    best.map(|e| (&s[..e], &s[e..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(a: &str) -> (String, String, String, String) {
        let p = split(a);
        (p.province, p.city, p.district, p.street)
    }

    #[test]
    fn splits_the_usual_forms() {
        assert_eq!(
            parts("广东省深圳市南山区科技园路1号2栋301室"),
            ("广东省".into(), "深圳市".into(), "南山区".into(), "科技园路1号2栋301室".into())
        );
        assert_eq!(
            parts("上海市浦东新区世纪大道100号"),
            ("上海市".into(), "上海市".into(), "浦东新区".into(), "世纪大道100号".into())
        );
        assert_eq!(
            parts("上海市上海市徐汇区漕溪北路1号"),
            ("上海市".into(), "上海市".into(), "徐汇区".into(), "漕溪北路1号".into())
        );
        assert_eq!(
            parts("新疆维吾尔自治区乌鲁木齐市天山区解放路1号"),
            ("新疆维吾尔自治区".into(), "乌鲁木齐市".into(), "天山区".into(), "解放路1号".into())
        );
        assert_eq!(
            parts("四川省阿坝藏族羌族自治州汶川县映秀镇1号"),
            ("四川省".into(), "阿坝藏族羌族自治州".into(), "汶川县".into(), "映秀镇1号".into())
        );
    }

    #[test]
    fn no_province_keeps_the_whole_address() {
        assert_eq!(parts("科技园路1号"), (String::new(), String::new(), String::new(), "科技园路1号".into()));
    }
}
