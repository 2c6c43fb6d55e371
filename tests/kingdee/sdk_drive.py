"""Drives the daifa K3Cloud simulator with Kingdee's official Python SDK
(kingdee-cdp-webapi-sdk) through every endpoint the simulator serves: data
centers, logins, ExecuteBillQuery / BillQuery (text and array filters),
Save / BatchSave / Draft / Submit / Audit / UnAudit / Delete / View / Push /
ExcuteOperation / QueryBusinessInfo, and the refusals a real server gives.
Prints one JSON object with what it saw."""
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

def status(text):
    return json.loads(text)["Result"]["ResponseStatus"]

out["data_centers"] = [d["Id"] for d in json.loads(sdk.GetDataCenters())]

objs = json.loads(sdk.BillQuery({"FormId": "SAL_SaleOrder", "FieldKeys": "FID,FBillNo",
                                 "FilterString": [{"Left": "", "FieldName": "FBillNo", "Compare": "67",
                                                   "Value": rows[0][1].lower(), "Right": "", "Logic": 0}]}))
out["bill_query"] = objs

po = lambda no, qty: {"FSupplierId": {"FNumber": "VEN00001"}, "FPurchaseOrgId": {"FNumber": "100"},
                      "F_DAIFA_PoNo": no, "FPOOrderEntry": [{"FMaterialId": {"FNumber": "MAT00001"}, "FQty": qty}]}
batch = status(sdk.BatchSave("PUR_PurchaseOrder", {"Model": [po("PO-B1", 1), po("PO-B2", 0)]}))
out["batch_saved"] = len(batch["SuccessEntitys"])
out["batch_error_index"] = batch["Errors"][0]["DIndex"]

draft = json.loads(sdk.Draft("PUR_PurchaseOrder", {"Model": {"F_DAIFA_PoNo": "PO-D1"}}))["Result"]
out["draft_deleted"] = status(sdk.Delete("PUR_PurchaseOrder", {"Numbers": [draft["Number"]]}))["IsSuccess"]
out["unaudit"] = status(sdk.UnAudit("PUR_PurchaseOrder", {"Numbers": [number]}))["IsSuccess"]
out["approved_delete_code"] = None
for op in ("Submit", "Audit"):
    getattr(sdk, op)("PUR_PurchaseOrder", {"Numbers": [number]})
out["approved_delete_code"] = status(sdk.Delete("PUR_PurchaseOrder", {"Numbers": [number]}))["MsgCode"]
out["closed"] = status(sdk.ExcuteOperation("PUR_PurchaseOrder", "BillClose", {"Numbers": [number]}))["IsSuccess"]

so_number = rows[0][1]
push = {"Numbers": [so_number], "TargetFormId": "SAL_OUTSTOCK", "IsEnableDefaultRule": "true"}
out["push_first"] = status(sdk.Push("SAL_SaleOrder", push))["IsSuccess"]
out["push_again_code"] = status(sdk.Push("SAL_SaleOrder", push))["MsgCode"]
out["approved_save_code"] = status(sdk.Save("SAL_SaleOrder", {"Model": {"FID": rows[0][0], "FNote": "x"}}))["MsgCode"]

info = json.loads(sdk.QueryBusinessInfo({"FormId": "SAL_OUTSTOCK"}))
out["business_info_fields"] = len(info["Result"]["NeedReturnData"]["Entrys"][0]["Fields"])

print(json.dumps(out, ensure_ascii=False))
