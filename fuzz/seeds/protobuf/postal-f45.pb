
POST-2026-000001F45".
GB123456789000North Sea Container Line Ltd2.
GB123456789000North Sea Container Line LtdJ8

USJFKNew York JFK
GBLHR"US"GB*à©ÂØ2˜íÄØR±
N750CP123456789US*0Jane Doe"$
1 Main Street10001"New York2US23
John Smith"%
2 High StreetSW1A 1AA"London2GBR/Knitted wool sweater611011 *PC1š™™™™™é?bš™™™™™é?