#!/usr/bin/env python3
# An independent reference encoder (plain struct packing) for the byte arrays in
# tests/wire_frames.rs: run it and paste its output into the `frames` module there.
import ipaddress, struct
def cs(b):
    if len(b)%2: b+=b'\0'
    s=sum(struct.unpack('!%dH'%(len(b)//2),b))
    while s>>16: s=(s&0xffff)+(s>>16)
    return (~s)&0xffff
ip=lambda s: ipaddress.ip_address(s).packed
mac=lambda s: bytes(int(x,16) for x in s.split(':'))
DIR='02:00:00:00:00:02'; RS='02:00:00:00:00:0b'; OTHER='02:00:00:00:00:0d'
def eth(d,s,t,p): return mac(d)+mac(s)+struct.pack('!H',t)+p
def v4(src,dst,proto,ttl,ident,p):
    h=struct.pack('!BBHHHBBH',0x45,0,20+len(p),ident,0x4000,ttl,proto,0)+ip(src)+ip(dst)
    c=cs(h); h=h[:10]+struct.pack('!H',c)+h[12:]; return h+p
def v6(src,dst,nh,hl,p): return struct.pack('!IHBB',0x60000000,len(p),nh,hl)+ip(src)+ip(dst)+p
def ph(src,dst,proto,n):
    if ':' in src: return ip(src)+ip(dst)+struct.pack('!IxxxB',n,proto)
    return ip(src)+ip(dst)+struct.pack('!xBH',proto,n)
def icmp4(t,c,rest): b=bytes([t,c,0,0])+rest; return b[:2]+struct.pack('!H',cs(b))+b[4:]
def icmp6(src,dst,t,c,rest): b=bytes([t,c,0,0])+rest; return b[:2]+struct.pack('!H',cs(ph(src,dst,58,len(b))+b))+b[4:]
def tcp(src,dst,sp,dp,seq,ack,flags,win,opts=b''):
    off=(20+len(opts))//4
    b=struct.pack('!HHIIBBHHH',sp,dp,seq,ack,off<<4,flags,win,0,0)+opts
    c=cs(ph(src,dst,6,len(b))+b); return b[:16]+struct.pack('!H',c)+b[18:]
def echo4(src,dst,ident,seq,ttl=1,ipid=0x1234,t=8): return v4(src,dst,1,ttl,ipid,icmp4(t,0,struct.pack('!HH',ident,seq)+b'vipcheck'))
def echo6(src,dst,ident,seq,hl=1,t=128): return v6(src,dst,58,hl,icmp6(src,dst,t,0,struct.pack('!HH',ident,seq)+b'vipcheck'))
MSS=bytes([2,4,0x05,0xb4])
out={}
out['ARP_REQUEST']=eth('ff:ff:ff:ff:ff:ff',DIR,0x0806,struct.pack('!HHBBH',1,0x0800,6,4,1)+mac(DIR)+ip('192.0.2.2')+bytes(6)+ip('192.0.2.11'))
ns=icmp6('2001:db8::2','ff02::1:ff00:11',135,0,bytes(4)+ip('2001:db8::11')+bytes([1,1])+mac(DIR))
out['NEIGHBOR_SOLICITATION']=eth('33:33:ff:00:00:11',DIR,0x86dd,v6('2001:db8::2','ff02::1:ff00:11',58,255,ns))
out['ECHO_V4_DR']=eth(RS,DIR,0x0800,echo4('192.0.2.2','192.0.2.20',0xbeef,1))
out['ECHO_V6_DR']=eth(RS,DIR,0x86dd,echo6('2001:db8::2','2001:db8::20',0xbeef,1))
out['SYN_V4_DR']=eth(RS,DIR,0x0800,v4('192.0.2.2','192.0.2.20',6,1,0x1234,tcp('192.0.2.2','192.0.2.20',40000,80,0x01020304,0,0x02,64240,MSS)))
out['SYN_V6_DR']=eth(RS,DIR,0x86dd,v6('2001:db8::2','2001:db8::20',6,1,tcp('2001:db8::2','2001:db8::20',40000,80,0x01020304,0,0x02,64240,MSS)))
out['RST_V4_DR']=eth(RS,DIR,0x0800,v4('192.0.2.2','192.0.2.20',6,1,0x1234,tcp('192.0.2.2','192.0.2.20',40000,80,0x01020305,0,0x04,0)))
out['RST_V6_DR']=eth(RS,DIR,0x86dd,v6('2001:db8::2','2001:db8::20',6,1,tcp('2001:db8::2','2001:db8::20',40000,80,0x01020305,0,0x04,0)))
out['ECHO_V4_IN_V4']=eth(RS,DIR,0x0800,v4('192.0.2.2','192.0.2.11',4,64,0x1234,echo4('192.0.2.2','192.0.2.20',0xbeef,1)))
out['ECHO_V6_IN_V6']=eth(RS,DIR,0x86dd,v6('2001:db8::2','2001:db8::11',41,64,echo6('2001:db8::2','2001:db8::20',0xbeef,1)))
out['ECHO_V4_IN_V6']=eth(RS,DIR,0x86dd,v6('2001:db8::2','2001:db8::11',4,64,echo4('192.0.2.2','192.0.2.20',0xbeef,1)))
out['SYN_V4_IN_V4']=eth(RS,DIR,0x0800,v4('192.0.2.2','192.0.2.11',4,64,0x1234,v4('192.0.2.2','192.0.2.20',6,1,0x1234,tcp('192.0.2.2','192.0.2.20',40000,80,0x01020304,0,0x02,64240,MSS))))
# replies
out['ARP_REPLY']=eth(DIR,RS,0x0806,struct.pack('!HHBBH',1,0x0800,6,4,2)+mac(RS)+ip('192.0.2.11')+mac(DIR)+ip('192.0.2.2')+bytes(18))
na=icmp6('2001:db8::11','2001:db8::2',136,0,bytes([0x60,0,0,0])+ip('2001:db8::11')+bytes([2,1])+mac(RS))
out['NEIGHBOR_ADVERT']=eth(DIR,RS,0x86dd,v6('2001:db8::11','2001:db8::2',58,255,na))
out['ECHO_REPLY_V4']=eth(DIR,RS,0x0800,echo4('192.0.2.20','192.0.2.2',0xbeef,1,ttl=64,ipid=0x5555,t=0)+bytes(10))
out['ECHO_REPLY_V6']=eth(DIR,RS,0x86dd,echo6('2001:db8::20','2001:db8::2',0xbeef,1,hl=64,t=129))
out['SYN_ACK_V4']=eth(DIR,RS,0x0800,v4('192.0.2.20','192.0.2.2',6,64,0,tcp('192.0.2.20','192.0.2.2',80,40000,0xa0b0c0d0,0x01020305,0x12,65160,MSS)))
out['SYN_ACK_V6']=eth(DIR,RS,0x86dd,v6('2001:db8::20','2001:db8::2',6,64,tcp('2001:db8::20','2001:db8::2',80,40000,0xa0b0c0d0,0x01020305,0x12,64800,MSS)))
out['RST_ACK_V4']=eth(DIR,RS,0x0800,v4('192.0.2.20','192.0.2.2',6,64,0,tcp('192.0.2.20','192.0.2.2',80,40000,0,0x01020305,0x14,0)))
# time exceeded from the real server (a forwarder) quoting our echo
q=echo4('192.0.2.2','192.0.2.20',0xbeef,1,ttl=0)
out['TIME_EXCEEDED_V4']=eth(DIR,RS,0x0800,v4('192.0.2.11','192.0.2.2',1,64,0x77,icmp4(11,0,bytes(4)+q)))
q6=echo6('2001:db8::2','2001:db8::20',0xbeef,1,hl=1)
out['TIME_EXCEEDED_V6']=eth(DIR,RS,0x86dd,v6('2001:db8::11','2001:db8::2',58,64,icmp6('2001:db8::11','2001:db8::2',3,0,bytes(4)+q6)))
# protocol unreachable from the RIP quoting the IPIP packet
qi=v4('192.0.2.2','192.0.2.11',4,64,0x1234,echo4('192.0.2.2','192.0.2.20',0xbeef,1))
out['PROTO_UNREACHABLE_V4']=eth(DIR,RS,0x0800,v4('192.0.2.11','192.0.2.2',1,64,0x78,icmp4(3,2,bytes(4)+qi)))
# the same with only 8 bytes of the quoted payload (RFC 792 minimum)
out['PROTO_UNREACHABLE_V4_SHORT']=eth(DIR,RS,0x0800,v4('192.0.2.11','192.0.2.2',1,64,0x78,icmp4(3,2,bytes(4)+qi[:28])))
qi6=v6('2001:db8::2','2001:db8::11',41,64,echo6('2001:db8::2','2001:db8::20',0xbeef,1))
out['PARAM_PROBLEM_V6']=eth(DIR,RS,0x86dd,v6('2001:db8::11','2001:db8::2',58,64,icmp6('2001:db8::11','2001:db8::2',4,1,struct.pack('!I',6)+qi6)))
out['UDP_V4']=eth(DIR,RS,0x0800,v4('192.0.2.20','192.0.2.2',17,64,0,struct.pack('!HHHH',53,40000,8,0)))
for k,v in out.items():
    rows=[', '.join('0x%02x'%x for x in v[i:i+12]) for i in range(0,len(v),12)]
    print('pub const %s: [u8; %d] = [\n    %s,\n];\n'%(k,len(v),',\n    '.join(rows)))
