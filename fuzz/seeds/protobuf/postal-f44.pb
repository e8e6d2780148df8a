
POST-2026-F44-0001F44"ê
GB123456789000North Sea Container Line Ltd"'
1 Dock RoadIP11 3BT"
Felixstowe2GB*4
Filing desk+44 1394 604500filings@nscl.example222.
GB123456789000North Sea Container Line LtdJ\

USJFKNew York JFK
GBLHRGB000084"US"GB*‡Ë⁄î2ò¨›îJ
GBLHRLondon HeathrowR9
N750CP123456744US¢USJFKAGBLHRAAUN60001001000008