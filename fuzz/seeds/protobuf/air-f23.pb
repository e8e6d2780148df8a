
AIR-2026-000001F23"A
GB123456789000North Sea Container Line Ltd*+44 1394 6045002.
GB123456789000North Sea Container Line LtdBNS04212GBJP

HKHKG	Hong Kong
GBLHRLondon HeathrowGB000084"HK"GB*≤И╫ь2▄кюьR▌
N703HWB88120001
N741123-12345675*:Kowloon Electronics Ltd"
12 Nathan Road"	Hong Kong2HK2ACamden Gadgets Ltd"+
5 Camden High StreetNW1 7JE"London2GBR`?Lithium-ion batteries packed with equipment (mobile telephones)851713 *BX1мллллU@:3481bмллллU@