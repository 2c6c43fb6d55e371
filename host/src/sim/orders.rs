//! Realistic sample purchase orders (real provinces, cities and districts,
//! Chinese names, mobile numbers), deterministic from a seed so runs repeat.

use crate::plugins::bindings::{Address, ErpRef, OrderLine, PurchaseOrder};

/// (province, city, districts, postcode prefix)
const PLACES: &[(&str, &str, &[&str], &str)] = &[
    ("广东省", "深圳市", &["南山区", "福田区", "宝安区", "龙岗区"], "518"),
    ("广东省", "广州市", &["天河区", "越秀区", "海珠区", "番禺区"], "510"),
    ("浙江省", "杭州市", &["西湖区", "滨江区", "余杭区", "拱墅区"], "310"),
    ("江苏省", "南京市", &["鼓楼区", "玄武区", "江宁区", "建邺区"], "210"),
    ("江苏省", "苏州市", &["姑苏区", "工业园区", "吴中区", "相城区"], "215"),
    ("上海市", "上海市", &["浦东新区", "徐汇区", "静安区", "闵行区"], "200"),
    ("北京市", "北京市", &["朝阳区", "海淀区", "东城区", "丰台区"], "100"),
    ("四川省", "成都市", &["武侯区", "锦江区", "青羊区", "高新区"], "610"),
    ("湖北省", "武汉市", &["洪山区", "江汉区", "武昌区", "汉阳区"], "430"),
    ("山东省", "青岛市", &["市南区", "崂山区", "黄岛区", "李沧区"], "266"),
    ("福建省", "厦门市", &["思明区", "湖里区", "集美区", "海沧区"], "361"),
    ("陕西省", "西安市", &["雁塔区", "碑林区", "未央区", "长安区"], "710"),
];
const SURNAMES: &[&str] =
    &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭"];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "秀英",
    "晓东", "婷婷",
];
const STREETS: &[&str] =
    &["科技园路", "人民路", "解放路", "中山路", "建设路", "和平路", "文化路", "长江路", "新华路", "幸福路"];
const MOBILE_PREFIX: &[&str] = &["138", "139", "136", "150", "151", "186", "187", "133", "177", "199"];

/// A small deterministic generator (xorshift64*): no global RNG, repeatable.
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A ship-to address somewhere real.
    pub fn address(&mut self) -> Address {
        let (province, city, districts, post) = *self.pick(PLACES);
        let name = format!("{}{}", self.pick(SURNAMES), self.pick(GIVEN));
        Address {
            name,
            phone: format!("{}{:08}", self.pick(MOBILE_PREFIX), self.below(100_000_000)),
            province: province.into(),
            city: city.into(),
            district: (*self.pick(districts)).into(),
            street: format!(
                "{}{}号{}栋{}室",
                self.pick(STREETS),
                1 + self.below(300),
                1 + self.below(20),
                101 + self.below(2000)
            ),
            postcode: format!("{post}{:03}", self.below(1000)),
            country: "CN".into(),
        }
    }

    /// A purchase order with 1–5 lines from a catalog of `catalog` SKUs.
    pub fn purchase_order(&mut self, n: u64, catalog: u64) -> PurchaseOrder {
        let po = format!("PO{n:08}");
        let lines = 1 + self.below(5) as usize;
        PurchaseOrder {
            po_number: po.clone(),
            idempotency_key: format!("daifa:{po}"),
            erp_refs: vec![ErpRef {
                system: "kingdee".into(),
                bill_no: format!("XSDD{n:08}"),
                bill_id: (100_000 + n).to_string(),
            }],
            lines: (0..lines)
                .map(|i| {
                    let sku = self.below(catalog);
                    let cents = 500 + self.below(50_000);
                    OrderLine {
                        line_id: format!("{po}-{}", i + 1),
                        our_sku: format!("MAT{sku:05}"),
                        supplier_sku: format!("SKU-{sku:05}"),
                        quantity: 1 + self.below(3) as u32,
                        unit_cost: format!("{}.{:02}", cents / 100, cents % 100),
                    }
                })
                .collect(),
            ship_to: self.address(),
            currency: "CNY".into(),
            requested_carrier: None,
            requested_service: None,
            remark: None,
        }
    }
}
