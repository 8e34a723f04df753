// Generates t/unit/oracle_cases.json from the reference oracle (see
// shared/conformance/README.md): node t/unit/oracle_cases.js > t/unit/oracle_cases.json
// expects the oracle installed by t/oracle/setup.sh.
// Builds t/unit/oracle_cases.json: each case run through the reference oracle.
const {execFileSync}=require('child_process');
const T="2022-05-04T03:02:03.000Z";
const C=[]; // {ep, body, override?}
function add(ep, body, over){C.push({ep, body, over});}
const tr=(o,over)=>add("track",Object.assign({event:"E",timestamp:T},o),over);
// ids (oracle: ajv coerceTypes "array" unwraps one level of scalar arrays)
tr({userId:"u",anonymousId:{a:1}}); tr({userId:"u",anonymousId:[1,2]}); tr({userId:"u",anonymousId:["x"]});
tr({userId:"u",anonymousId:true}); tr({userId:"u",anonymousId:1.5e-7}); tr({userId:"u",anonymousId:[[1,[2,null]],{},null,"s"]});
tr({userId:"u",anonymousId:1e21}); tr({userId:"u",anonymousId:""}); tr({userId:"u",anonymousId:null});
tr({userId:[["x"]]}); tr({userId:[1,2]}); tr({userId:[]}); tr({userId:{a:1}}); tr({userId:"",anonymousId:"a"});
tr({userId:null,anonymousId:"a"}); tr({userId:[null]}); tr({userId:[true]}); tr({userId:[1e21]}); tr({userId:false});
tr({userId:-0}); tr({userId:0.000001}); tr({userId:1e-7}); tr({userId:123e-20}); tr({userId:[[1]]}); tr({userId:[{}]});
tr({userId:[""]}); tr({anonymousId:""}); tr({anonymousId:[""]}); tr({userId:0.1}); tr({userId:123456789012345680000});
tr({userId:5e-324}); tr({userId:1.7976931348623157e308}); tr({userId:-1.5}); tr({userId:100}); tr({userId:1e20});
tr({anonymousId:[7]}); tr({anonymousId:[1,2]});
// event names
tr({userId:"u",event:["e"]}); tr({userId:"u",event:true}); tr({userId:"u",event:[]}); tr({userId:"u",event:{}});
tr({userId:"u",event:1e21}); tr({userId:"u",event:""}); tr({userId:"u",event:[["q"]]}); tr({userId:"u",event:[1,2]});
tr({userId:"u",event:null}); tr({userId:"u",event:"a\u0001\"\\/\u2028"});
// metric values
for (const v of ["0x1A"," 42 ","\n12\t","\u00a012\u2028","1e3","-0","  ","0b101","0o17",".5","5.","+5","1_000","12abc","NaN",
  "-0x10","0X1a","1e","\ufeff7",[15],["15"],[1,2],[],{},true,false,null,"",[null],[true],[[3]],[""],[" 7 "],-0,1e21,0.1,"0.1","1e-7","123456789012345678901234567890"])
  tr({userId:"u",properties:{revenue:v}});
tr({userId:"u",properties:{revenue:null,value:3}}); tr({userId:"u",properties:{value:"7"}});
tr({userId:"u",properties:{revenue:"",value:9}}); tr({userId:"u",properties:{value:false,revenue:null}});
// properties
tr({userId:"u",properties:null}); tr({userId:"u",properties:""}); tr({userId:"u",properties:5}); tr({userId:"u",properties:true});
tr({userId:"u",properties:[{a:1}]}); tr({userId:"u",properties:[]}); tr({userId:"u",properties:"x"}); tr({userId:"u",properties:{}});
// timestamps
for (const t of ["2022-05-04T03:02:03Z","2022-05-04T03:02:03.1Z","2022-05-04T03:02:03.12Z","2022-05-04T03:02:03.123456789Z",
"2022-05-04t03:02:03z","2022-05-04 03:02:03Z","2022-05-04T03:02Z","2022-05-04T03Z","2022-05-04Z","2022-05Z","2022Z",
"2022-05-04T03:02:03+05:30","2022-05-04T03:02:03+0530","2022-05-04T03:02:03-00:00","2022-05-04T03:02:03+05","2022-05-04T03:02:03.5+05:30",
"2022-05-04T03:02:03","2022-05-04T03:02","2022-05-04T03","2022-05-04","2022-05","2022","2022-5-4","2022-05-04T03:02:03.555","2022-05-04T03:02:03.5555",
"2023-02-29","2023-02-29T00:00:00Z","2023-02-31T00:00:00Z","2023-04-31T00:00:00Z","2023-02-32T00:00:00Z","2023-13-01T00:00:00Z","2023-00-01T00:00:00Z","2023-01-00T00:00:00Z",
"2022-05-04T24:00:00Z","2022-05-04T24:00:01Z","2022-05-04T24:00","2022-05-04T23:60:00Z","2022-05-04T23:59:60Z","2022-05-04T25:00:00","2022-06-31T99:00:00","2022-06-31T99:00:00Z",
"2022-05-04T03:02:03+24:00","2022-05-04T03:02:03+23:59","2022-05-04T03:02:03+99:00","2022-05-04T03:02:03 +05:30","2022-05-04T03:02:03.123 Z",
" 2022-05-04T03:02:03Z","2022-05-04T03:02:03Z ","2022-05-04 03:02:03","2022-05-04T3:2:3","2022-05-04T03:02:03.Z","2022-05-04T03:02:03,5Z",
"0050-01-01","0000-01-01T00:00:00Z","9999-12-31T23:59:59.999Z","2023-00-01","2023-01-00","2023-14-40T30:70:80",
"2022-05-04T03:02:03.123+05:30","2022-05-04T03:02:03UTC","2022-05-04T03:02:03+5:30","",null,true,false,{},[],["2022-05-04"],
0,-1.9,1.9,8.64e15,-8.64e15,1651633328000,1e20,"2022-05-04T03:02:03.123z","1970-01-01T00:00:00.0001Z","1969-12-31T23:59:59.999Z","1600-02-29T12:00:00Z"])
  tr({userId:"u",timestamp:t});
// deliberate differences: the reference's V8/dayjs fallbacks accept these; we reject (status 400, no events)
for (const t of ["May 4 2022","1651633328000"])
  tr({userId:"u",timestamp:t},{status:400,events:[],note:"deliberate: a zone-less legacy date, a digit string that is no date"});
// read as the reference reads them (V8's legacy parser with a zone, dayjs' loose pattern)
for (const t of ["Wed, 04 May 2022 03:02:03 GMT","20220504","2022/05/04","2022-05-04  03:02:03","2022-05-04T03:02:03:123"])
  tr({userId:"u",timestamp:t});
// deliberate: a four-digit year 0000-0099 is that year (the reference reads 0050 as 1950)
{ const d=new Date(0); d.setUTCFullYear(50,0,1);
  C.forEach(c=>{ if (c.body.timestamp==="0050-01-01") c.over={note:"deliberate: year as written",events:"YEAR50:"+d.getTime()}; }); }
// Infinity metric: the reference sends metricValue null; we reject
for (const v of ["Infinity","-Infinity","1e400"]) tr({userId:"u",properties:{revenue:v}},{status:400,events:[],note:"deliberate: non-finite metric rejected"});
// identify / alias
const id=(o,over)=>add("identify",Object.assign({timestamp:T},o),over);
const al=(o,over)=>add("alias",Object.assign({timestamp:T},o),over);
id({userId:"u",previousId:"",anonymousId:"a"}); id({userId:"u",previousId:null,anonymousId:"a"}); id({userId:"",anonymousId:"a"},{status:[200,400]});
id({userId:42,anonymousId:[7]}); id({userId:"u",anonymousId:{}},{status:400}); id({userId:"u",anonymousId:"a",timestamp:"bad"},{status:400});
id({userId:"u",anonymousId:"a",properties:[1]}); id({userId:"u"}); id({anonymousId:"a"}); id({}, {status:400});
id({userId:true,previousId:1.5,anonymousId:"x"}); id({userId:"u",previousId:["p"]});
al({userId:"u",previousId:[1,2]}); al({userId:"u",previousId:""}); al({userId:"u",anonymousId:"a",properties:[1]});
al({userId:"u"}); al({anonymousId:"a"}); al({userId:"u",previousId:"p",anonymousId:"a"}); al({userId:[3],previousId:[null]});
// type is decided by the endpoint
add("track",{type:"alias",userId:"u",event:"X",timestamp:T}); add("alias",{type:"track",userId:"u",previousId:"p",event:"X",timestamp:T});
// page/screen/group: nothing sent
for (const ep of ["page","screen","group"]) { add(ep,{userId:"u",name:"n"}); add(ep,{name:"n"},{status:400}); add(ep,{userId:"u",properties:[1]},{status:400}); add(ep,{userId:"u",timestamp:"x"},{status:400}); }

// what Segment's API passes on to the destination: an empty-string userId,
// anonymousId or previousId is absent ("raw" stays what the client sent)
const api=(b)=>{const o=Object.assign({},b); for (const k of ["userId","anonymousId","previousId"]) if (o[k]==="") delete o[k]; return o;};
const input=C.map(c=>Object.assign(api(c.body),{type:c.ep}));
const out=JSON.parse(execFileSync('node',[require('path').join(__dirname,'..','oracle','oracle.js')],{input:JSON.stringify(input),env:Object.assign({},process.env,{TZ:'UTC'})}));
const before=Date.now();
const res=C.map((c,i)=>{
  const o=out[i]; const events=o.requests.map(r=>r.body[0]);
  let status = o.error ? (c.ep==="identify" ? 200 : 400) : 200;
  const now = events.length>0 && (c.body.timestamp===undefined||c.body.timestamp===null||c.body.timestamp===""||(typeof c.body.timestamp==="number"&&Math.abs(c.body.timestamp)>8.64e15));
  const r={id:"o"+String(i+1).padStart(3,"0"), path:"/v1/"+c.ep, raw:JSON.stringify(c.body), status, events, now};
  if (o.error) r.oracle_error=o.error;
  if (c.over && typeof c.over.events==="string") { const ms=Number(c.over.events.split(":")[1]); c.over.events=events.map(e=>Object.assign({},e,{creationDate:ms})); }
  if (c.over) Object.assign(r,c.over);
  return r;
});
// skip cases where our deliberate decimal-fraction reading differs (none included: no 1-2 digit zoneless fractions)
process.stdout.write("[\n"+res.map(r=>JSON.stringify(r)).join(",\n")+"\n]\n");
