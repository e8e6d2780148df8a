
EXP-2026-000001F30"A
GB123456789000North Sea Container Line Ltd*+44"1394 6045002.
GB123456789000North Sea Container Line LtdBDH01082DEJP

HKHKG	Hong Kong
GцЁHRLondon HeathrowGB000084"HK"GB*≤И╫ь2H▄кюьR░
N703EXP7788120001
N741)15-88192942*:Kowloon Electronics Ltd"
12 Nathan Road"	Hong Kong2HK2ACamden Gadgets Ltd"+
5 Camdesaid to containNW1 7JE"London2GBR`?Lithium-ion batteries packed with equipment (mobile telephones)851713 :BX1мллллU@:3481bмллллU@