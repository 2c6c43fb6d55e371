"""Drives the daifa K3Cloud simulator with Kingdee's official Python SDK
(kingdee-cdp-webapi-sdk): log in, query, save, submit, audit, view, and an
error inside a query array. Prints one JSON object with what it saw."""
import json
import sys

from k3cloud_webapi_sdk.main import K3CloudApiSdk

server_url, acct, user, app_id, app_secret = sys.argv[1:6]
sdk = K3CloudApiSdk(server_url)
sdk.InitConfig(acct, user, app_id, app_secret, server_url, 2052)
out = {}

login = json.loads(sdk.Execute("Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginByAppSecret",
                               {"parameters": [acct, user, app_id, app_secret, 2052]}))
out["login_result_type"] = login["LoginResultType"]

rows = json.loads(sdk.ExecuteBillQuery({
    "FormId": "SAL_SaleOrder",
    "FieldKeys": "FID,FBillNo,FSaleOrderEntry_FEntryID,FMaterialId.FNumber,FQty",
    "FilterString": "FDocumentStatus = 'C'",
    "OrderString": "FID ASC",
    "TopRowCount": 0, "StartRow": 0, "Limit": 2000,
}))
out["query_rows"] = len(rows)
out["first_row"] = rows[0]

saved = json.loads(sdk.Save("PUR_PurchaseOrder", {"Model": {
    "FBillTypeID": {"FNUMBER": "CGDD01_SYS"},
    "FSupplierId": {"FNumber": "VEN00001"},
    "FPurchaseOrgId": {"FNumber": "100"},
    "F_DAIFA_PoNo": "PO-SDK-1",
    "FPOOrderEntry": [{"FMaterialId": {"FNumber": "MAT00001"}, "FQty": 2, "FTaxPrice": 12.5}],
}}))
status = saved["Result"]["ResponseStatus"]
out["save_success"] = status["IsSuccess"]
number = saved["Result"]["Number"]
out["number"] = number

for op in ("Submit", "Audit"):
    r = json.loads(getattr(sdk, op)("PUR_PurchaseOrder", {"Numbers": [number]}))
    out[op.lower() + "_success"] = r["Result"]["ResponseStatus"]["IsSuccess"]

viewed = json.loads(sdk.View("PUR_PurchaseOrder", {"Number": number}))
out["viewed_status"] = viewed["Result"]["Result"]["FDocumentStatus"]

invalid = json.loads(sdk.Save("PUR_PurchaseOrder", {"Model": {"FPOOrderEntry": []}}))
out["invalid_msg_code"] = invalid["Result"]["ResponseStatus"]["MsgCode"]

bad = json.loads(sdk.ExecuteBillQuery({"FormId": "SAL_SaleOrder", "FieldKeys": "FNoSuchField"}))
out["bad_query_msg_code"] = bad[0][0]["Result"]["ResponseStatus"]["MsgCode"]

print(json.dumps(out, ensure_ascii=False))
