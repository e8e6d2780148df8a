
SEA-2026-F17-0001F17"ê
GB123456789000North Sea Container Line Ltd"'
1 Dock RoadIP11 3BT"
Felixstowe2GB*4
Filing desk+44 1394 604500filings@nscl.example222.
GB123456789000North Sea Container Line LtdB
9319466*042W2GB:
NORTH STARJ[

CNSHAShanghai
NLRTM	Rotterdam"CN"SG"NL"GB*Äº“î2‡◊ÂïJ
NLRTM	RotterdamR—
N704NSCL2026F17M01"6GB123456789000-SHA0001ZP
NL812345678Holland Tool Import BV"&
Waalhaven 123089 JH"	Rotterdam2NL22bJShanghai Precision Tools Co"(
88 Pudong Avenue200120"Shanghai2CN22rÄ˙Œî