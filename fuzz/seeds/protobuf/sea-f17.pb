
SEA-2026-F17-0001F17"œ
GB123456789000North Sea Container Line Ltd"'
1 Dock RoadIP11 3BT"
Felixstowe2GB*
Filing desk22:
TE+44 1394 604500:
EMfilings@nscl.example2.
GB123456789000North Sea Container Line LtdB
9319466*042W2GB:
NORTH STARJ[

CNSHAShanghai
NLRTM	Rotterdam"CN"SG"NL"GB*€¼Ò”2à×å•J
NLRTM	RotterdamRÑ
N704NSCL2026F17M01"6GB123456789000-SHA0001ZP
NL812345678Holland Tool Import BV"&
Waalhaven 123089 JH"	Rotterdam2NL22bJShanghai Precision Tools Co"(
88 Pudong Avenue200120"Shanghai2CN22r€úÎ”